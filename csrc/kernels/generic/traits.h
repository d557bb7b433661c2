// Optional features of the vector traits V, detected when a generic kernel is compiled: where an
// ISA's V provides one, the kernel takes the form that uses it. Compiled per ISA inside
// namespace pycnn::PYCNN_ISA_NS.
#pragma once

#ifndef PYCNN_ISA_NS
#error "include from an ISA's kernels.cpp after defining PYCNN_ISA_NS"
#endif

#include <type_traits>

namespace pycnn::PYCNN_ISA_NS {

// V::interleave3 (flagged by V::kInterleave3): three rows into pixels.
template <class V, class = void>
struct has_interleave3 : std::false_type {};
template <class V>
struct has_interleave3<V, std::void_t<decltype(V::kInterleave3)>> : std::true_type {};

// V::even_in_lanes, V::odd_in_lanes and V::in_lane_order (flagged by V::kEvenOddInLanes): a
// stride-2 column split that stays inside 128-bit lanes, its lane order restored once per
// result; with it, where masked loads are dear, V::previous_in_lanes, and where they are cheap,
// V::next_in_lanes and V::first_or_zero.
template <class V, class = void>
struct has_even_odd_in_lanes : std::false_type {};
template <class V>
struct has_even_odd_in_lanes<V, std::void_t<decltype(V::kEvenOddInLanes)>> : std::true_type {};

// V::shift_in_by<M> (flagged by V::kShiftInBy): V::shift_in by a shift known when compiled, one
// immediate-operand instruction where shift_in takes a two-source permute. shift_in_by<M, V>
// takes it where V has it.
template <class V, class = void>
struct has_shift_in_by : std::false_type {};
template <class V>
struct has_shift_in_by<V, std::void_t<decltype(V::kShiftInBy)>> : std::true_type {};

template <int M, class V>
inline typename V::reg shift_in_by(typename V::reg cur, typename V::reg next) {
  if constexpr (has_shift_in_by<V>::value) return V::template shift_in_by<M>(cur, next);
  else return V::shift_in(cur, next, M);
}

}  // namespace pycnn::PYCNN_ISA_NS
