// Runtime configuration: instruction-set dispatch, threads, build information.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pycnn {

// Instruction sets with a kernel table, in increasing order of preference.
enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char* isa_name(Isa isa);
// Throws std::invalid_argument for an unknown name.
Isa isa_from_name(const std::string& name);

// Features found by CPUID/XGETBV (names as in /proc/cpuinfo: "avx2", "fma", "avx512f", ...).
std::vector<std::string> cpu_features();
// The CPUID vendor string: "AuthenticAMD", "GenuineIntel", ...
std::string cpu_vendor();
// Whether vector loads that straddle two cache lines cost little on this CPU: true on AMD
// (measured on Zen 4), false elsewhere (Intel measured a split-load penalty). Kernels that could
// read a misaligned operand in place or pack it to an aligned copy ask this.
bool split_line_loads_cheap();
// Whether a 512-bit shuffle costs a shuffle slot of its own rather than an FMA's: true on AMD
// Zen 5 (family 0x1A on; full-width AVX-512), false elsewhere (Zen 4 runs a 512-bit shuffle on
// the units its FMAs take), or as set by set_zmm_shuffles_cheap (-1: as detected, 0 or 1), for
// tests of both forms. The AVX-512 NCHW depthwise kernel asks it (DepthwiseNchwArgs::shift_taps).
bool zmm_shuffles_cheap();
void set_zmm_shuffles_cheap(int cheap);
// Whether the hardware prefetchers follow many rows read side by side (the NCHW pooling windows,
// the NCHW depthwise stride-2 tiles), which those kernels otherwise prefetch themselves: true on
// AMD family 0x19 and on (Zen 3 and later; measured on Zen 4, where the hints cost 5-16% on
// inputs in L3), false elsewhere (Zen 1 measured the hints up to 3x faster), or as set by
// set_hardware_follows_rows (-1: as detected, 0 or 1), for tests of both forms. Each op's rule
// on top of it is at its use (ops/depthwise.cpp, ops/pool.cpp).
bool hardware_follows_rows();
void set_hardware_follows_rows(int follows);
// One core's L2 cache in bytes as the OS reports it (sysconf; 1 MiB where it reports none), or
// as set by set_l2_cache_bytes (bytes <= 0: the reported size again), for tests of the
// algorithm choices that depend on it (stride-2 Winograd; transposed Winograd's tiles). "auto"
// is resolved on every call, while a pycnn.ops plan fixes at creation which prepared weights it
// passes (conv2d: a plan made to run the stride-2 Winograd raises once a smaller setting turns
// that choice down) or its form (conv_transpose2d), so clear pycnn.ops' plan caches around a
// change (the tests' l2_cache fixture does).
int64_t l2_cache_bytes();
void set_l2_cache_bytes(int64_t bytes);
// ISAs whose kernels this CPU (and OS) can run, Scalar first.
std::vector<Isa> available_isas();
// The ISA used by the next call. Starts as PYCNN_ISA if set, else the best available.
Isa current_isa();
// Throws std::invalid_argument if the CPU lacks `isa`.
void set_isa(Isa isa);

// Threads used by one op: pycnn's own setting if made, capped by OpenMP's (so that
// OMP_NUM_THREADS and threadpoolctl limits apply).
int num_threads();
void set_num_threads(int n);
std::string openmp_runtime();

// Float32 FMA peak (GFLOP/s) of `threads` threads running the active ISA's register-only FMA
// loop for about `seconds`.
double measure_fma_peak_gflops(int threads, double seconds);

// Main-memory bandwidth (GB/s, read + write) of `threads` threads streaming a copy of about
// `bytes` bytes: the bandwidth roof of the benchmark's roofline.
double measure_copy_bandwidth_gbs(int threads, size_t bytes);

std::string compiler();
std::string compile_flags();

}  // namespace pycnn
