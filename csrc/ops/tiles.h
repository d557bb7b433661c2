// Choosing among a kernel family's register-tile shapes (kernels/microkernels.h: Tiled,
// kTileShapes). Shared by every op that drives the GEMM-shaped microkernels.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/workspace.h"
#include "kernels/microkernels.h"

namespace pycnn {

// The register-tile shape that wastes the least work on an m x n output (rows padded to MR,
// columns to NR); within 3% of the least, the table's order of preference decides. The last,
// single-vector shape (kernels/microkernels.h) serves only n of one vector: it loads about one
// operand per FMA, so where a wider tile merely pads a few columns the wider tile is faster
// (3x3 64->80 @28 NHWC: 12x1 97-105 GFLOP/s, 8x3 118-134).
template <class K>
const K& pick_tile(const K (&shapes)[kTileShapes], int64_t m, int64_t n) {
  auto padded = [&](const K& k) {
    return (double)round_up(m, (int64_t)k.mr) * (double)round_up(n, (int64_t)k.nr);
  };
  auto eligible = [&](const K& k) { return &k != &shapes[kTileShapes - 1] || n <= (int64_t)k.nr; };
  double best = padded(shapes[0]);
  for (const K& k : shapes)
    if (eligible(k)) best = std::min(best, padded(k));
  for (const K& k : shapes)
    if (eligible(k) && padded(k) <= best * 1.03) return k;
  return shapes[0];
}

// A row of `width` pixels in tiles of MR pixels (`full` of them), then of MR-1 (the rest), when
// that covers it exactly with as many tiles as MR alone would need: 56 = 6x6 + 4x5. Otherwise
// all tiles have MR pixels and the last one may be partial.
struct RowTiles {
  int64_t full;
  RowTiles(int64_t width, int64_t mr) {
    const int64_t tiles = ceil_div(width, mr);
    full = mr > 1 && width % mr && width >= tiles * (mr - 1) ? width - tiles * (mr - 1) : tiles;
  }
};

}  // namespace pycnn
