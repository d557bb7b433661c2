// Choosing among a kernel family's register-tile shapes (kernels/microkernels.h: Tiled,
// kTileShapes). Shared by every op that drives the GEMM-shaped microkernels.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/workspace.h"
#include "kernels/microkernels.h"

namespace pycnn {

// A row of `width` pixels in as many tiles as MR-pixel tiles would need, balanced: the first
// `extra` of `base` + 1 pixels, the rest of `base` (56 at MR = 6: 6x6 + 4x5; 28 at MR = 12:
// 10 + 2x9), when no tile is shorter than MR-4 (TiledRows has kernels for MR and MR-1 ...
// MR-4); otherwise MR-pixel tiles, the last one partial.
struct RowTiles {
  int64_t tiles, base, extra;
  RowTiles(int64_t width, int64_t mr) {
    tiles = std::max<int64_t>(1, ceil_div(width, mr));
    base = width / tiles;
    extra = width % tiles;
    if (base + (int64_t)kRowShortfalls < mr) base = mr, extra = 0;
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
// (TiledRows, with MR-1 ... MR-4 row variants) as RowTiles cuts it, or for the NCHW direct
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

// The work a tile shape spends on an m x n output: rows as computed_rows, columns padded to NR.
template <class K>
double tile_work(const K& k, int64_t m, int64_t n) {
  return (double)computed_rows(k, m) * (double)round_up(n, (int64_t)k.nr);
}

// pick_tile (below) among the shapes `allowed` accepts; null if it accepts none.
template <class K, class Allowed>
const K* pick_tile_among(const K (&shapes)[kTileShapes], int64_t m, int64_t n, const Allowed& allowed) {
  double work[kTileShapes];  // of the eligible shapes, else negative
  int least = -1;
  for (int i = 0; i < kTileShapes; ++i) {
    const K& k = shapes[i];
    const bool eligible = allowed(k) && (i != kTileShapes - 1 || n <= (int64_t)k.nr);
    work[i] = eligible ? tile_work(k, m, n) : -1.0;
    if (eligible && (least < 0 || work[i] < work[least])) least = i;
  }
  if (least < 0) return nullptr;
  for (int i = 0; i < kTileShapes; ++i)
    if (work[i] >= 0.0 && work[i] <= work[least] * 1.03) return &shapes[i];
  return &shapes[least];
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
  const K* k = pick_tile_among(shapes, m, n, [](const K&) { return true; });
  return k ? *k : shapes[0];
}

// For a GEMM whose rows are output channels (A: the weights, broadcast) and whose B panel of KC
// input rows x NR pixels is re-read once per MR channels (NCHW: the input planes, in place or
// packed), B costs sizeof(T)/MR bytes a multiply-add whatever the vector width. The shape with
// the fewest loads per FMA may be 3 rows deep (AVX2's 3x4: 21 bytes a cycle at one Zen 4 core's
// AVX2 peak); once that panel reaches kStreamedBPanelBytes on a large image, its re-reads come
// from L2 faster than L2 feeds them next to A and C, and a tile of at least kStreamedBMinRows
// rows halves them (AVX-512's 6x4 reads 10.7 bytes a cycle). Elsewhere the fewest loads per FMA
// win. AVX2 on Zen 4, one thread, NCHW 1x1, p10 us, 3x4 -> 6x2: 256->64 @56 1888 -> 1330,
// 128->256 @28 773 -> 539, 128->128 @28 386 -> 280, 96->24 @56 237 -> 175, 64->64 @56 399 ->
// 301; where not applied: 16->32 @56 (a 2 KiB panel) 43.6 -> 47.9, 512->512 @7 (49 pixels)
// 334 -> 364, 1024->256 @7 347 -> 383; 512->128 @14 and 1024->256 @14 level.
constexpr size_t kStreamedBMinRows = 6;
constexpr int64_t kStreamedBPanelBytes = 8 << 10;
constexpr int64_t kStreamedBMinPixels = 512;

template <class K>
const K& pick_channel_rows_tile(const K (&shapes)[kTileShapes], int64_t channels, int64_t pixels,
                                int64_t kc, size_t element_bytes) {
  const K& any = pick_tile(shapes, channels, pixels);
  if (any.mr >= kStreamedBMinRows || pixels < kStreamedBMinPixels ||
      kc * (int64_t)any.nr * (int64_t)element_bytes < kStreamedBPanelBytes)
    return any;
  const K* deep = pick_tile_among(shapes, channels, pixels, [](const K& k) { return k.mr >= kStreamedBMinRows; });
  return deep && tile_work(*deep, channels, pixels) <= 1.10 * tile_work(any, channels, pixels) ? *deep : any;
}

}  // namespace pycnn
