// Choosing among a kernel family's register-tile shapes (kernels/microkernels.h: Tiled,
// kTileShapes). Shared by every op that drives the GEMM-shaped microkernels.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/workspace.h"
#include "kernels/microkernels.h"

namespace pycnn {

// A row of `width` pixels in as many tiles as MR-pixel tiles would need, balanced: the first
// `extra` of `base` + 1 pixels, the rest of `base` (56 at MR = 6: 6x6 + 4x5; 64 at MR = 12:
// 4x11 + 2x10), when no tile is shorter than MR-2 (TiledRows has kernels for MR, MR-1 and
// MR-2); otherwise MR-pixel tiles, the last one partial.
struct RowTiles {
  int64_t tiles, base, extra;
  RowTiles(int64_t width, int64_t mr) {
    tiles = std::max<int64_t>(1, ceil_div(width, mr));
    base = width / tiles;
    extra = width % tiles;
    if (base + 2 < mr) base = mr, extra = 0;
  }
  // Pixels of tile t, which starts at pixel i0.
  int64_t size(int64_t t, int64_t i0, int64_t width) const {
    return t < extra ? base + 1 : std::min(base, width - i0);
  }
  // The first pixel of tile t.
  int64_t start(int64_t t) const { return t * base + std::min(t, extra); }
  // Rows the kernels compute for the row: a partial last tile computes all MR.
  static int64_t computed(int64_t width, int64_t mr) {
    const RowTiles tiles(width, mr);
    return tiles.base == mr && width % mr ? round_up(width, mr) : width;
  }
};

// Rows an m-row output costs a tile shape: rounded up to MR, or for the NHWC direct kernels
// (TiledRows, with MR-1 and MR-2 row variants) as RowTiles cuts it, or for the NCHW direct
// kernels (TiledBlocks) m itself when a kernel computes the last block's rows exactly.
template <class Fn>
int64_t computed_rows(const Tiled<Fn>& k, int64_t m) {
  return round_up(m, (int64_t)k.mr);
}
template <class Fn>
int64_t computed_rows(const TiledRows<Fn>& k, int64_t m) {
  return RowTiles::computed(m, (int64_t)k.mr);
}
template <class Fn>
int64_t computed_rows(const TiledBlocks<Fn>& k, int64_t m) {
  const int64_t last = m % (int64_t)k.mr;
  return last && !k.exact((size_t)last) ? round_up(m, (int64_t)k.mr) : m;
}

// The register-tile shape that wastes the least work on an m x n output (rows as computed_rows,
// columns padded to NR); within 3% of the least, the table's order of preference decides: 56
// pixels x 64 channels take AVX-512's 6x4 (6x6 + 4x5 pixels) over its NHWC 14x2, which loads
// more per FMA (3x3 64->64 @56 NHWC, 2 threads: 498 vs 526 us). The last, single-vector shape
// (kernels/microkernels.h) serves only n of one vector: it loads about one operand per FMA, so
// where a wider tile merely pads a few columns the wider tile is faster (3x3 64->80 @28 NHWC:
// 12x1 97-105 GFLOP/s, 8x3 118-134).
template <class K>
const K& pick_tile(const K (&shapes)[kTileShapes], int64_t m, int64_t n) {
  auto padded = [&](const K& k) { return (double)computed_rows(k, m) * (double)round_up(n, (int64_t)k.nr); };
  auto eligible = [&](const K& k) { return &k != &shapes[kTileShapes - 1] || n <= (int64_t)k.nr; };
  double best = padded(shapes[0]);
  for (const K& k : shapes)
    if (eligible(k)) best = std::min(best, padded(k));
  for (const K& k : shapes)
    if (eligible(k) && padded(k) <= best * 1.03) return k;
  return shapes[0];
}

}  // namespace pycnn
