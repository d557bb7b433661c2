// Choosing among a kernel family's register-tile shapes (kernels/microkernels.h: Tiled,
// kTileShapes). Shared by every op that drives the GEMM-shaped microkernels.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/workspace.h"
#include "kernels/microkernels.h"

namespace pycnn {

// The register-tile shape that wastes the least work on an m x n output (rows padded to MR,
// columns to NR); within 3% of the least, the table's order of preference decides.
template <class K>
const K& pick_tile(const K (&shapes)[kTileShapes], int64_t m, int64_t n) {
  auto padded = [&](const K& k) {
    return (double)round_up(m, (int64_t)k.mr) * (double)round_up(n, (int64_t)k.nr);
  };
  double best = padded(shapes[0]);
  for (const K& k : shapes) best = std::min(best, padded(k));
  for (const K& k : shapes)
    if (padded(k) <= best * 1.03) return k;
  return shapes[0];
}

}  // namespace pycnn
