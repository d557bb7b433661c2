// CPU feature detection (CPUID + XGETBV) and the instruction-set choice.
#include <cpuid.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "pycnn/runtime.h"

namespace pycnn {
namespace {

struct CpuFeatures {
  bool sse2 = false, sse41 = false, avx = false, fma = false, f16c = false, avx2 = false,
       avx512f = false, avx512dq = false, avx512cd = false, avx512bw = false, avx512vl = false,
       os_avx = false, os_avx512 = false;
  char vendor[13] = {};
  unsigned family = 0;  // CPUID's display family: base family, plus the extended one when base is 0xF
};

unsigned long long read_xcr0() {
  unsigned int lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned int eax, ebx, ecx, edx;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return f;
  std::memcpy(f.vendor, &ebx, 4);  // the vendor string is EBX, EDX, ECX
  std::memcpy(f.vendor + 4, &edx, 4);
  std::memcpy(f.vendor + 8, &ecx, 4);
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  f.family = (eax >> 8) & 0xF;
  if (f.family == 0xF) f.family += (eax >> 20) & 0xFF;
  f.sse2 = edx & (1u << 26);
  f.sse41 = ecx & (1u << 19);
  f.fma = ecx & (1u << 12);
  f.f16c = ecx & (1u << 29);
  const bool osxsave = ecx & (1u << 27);
  f.avx = ecx & (1u << 28);
  if (osxsave) {
    const unsigned long long xcr0 = read_xcr0();
    f.os_avx = (xcr0 & 0x6) == 0x6;              // XMM and YMM state
    f.os_avx512 = (xcr0 & 0xE6) == 0xE6;         // plus opmask, ZMM_Hi256, Hi16_ZMM
  }
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    f.avx2 = ebx & (1u << 5);
    f.avx512f = ebx & (1u << 16);
    f.avx512dq = ebx & (1u << 17);
    f.avx512cd = ebx & (1u << 28);
    f.avx512bw = ebx & (1u << 30);
    f.avx512vl = ebx & (1u << 31);
  }
  return f;
}

const CpuFeatures& features() {
  static const CpuFeatures f = detect();
  return f;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = features();
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return f.os_avx && f.avx && f.avx2 && f.fma;
    case Isa::Avx512:
      return f.os_avx512 && f.avx512f && f.avx512dq && f.avx512bw && f.avx512vl && f.avx2 && f.fma;
  }
  return false;
}

Isa initial_isa() {
  if (const char* env = std::getenv("PYCNN_ISA"); env && *env) {
    Isa isa;
    try {
      isa = isa_from_name(env);
    } catch (const std::invalid_argument&) {
      throw std::invalid_argument(std::string("PYCNN_ISA=") + env +
                                  " is not an ISA; use scalar, avx2 or avx512");
    }
    if (!isa_supported(isa))
      throw std::invalid_argument(std::string("PYCNN_ISA=") + env + ": this CPU does not support it");
    return isa;
  }
  return available_isas().back();
}

std::atomic<int>& isa_slot() {
  static std::atomic<int> slot{(int)initial_isa()};
  return slot;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "unknown";
}

Isa isa_from_name(const std::string& name) {
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
    if (name == isa_name(isa)) return isa;
  throw std::invalid_argument("isa must be 'scalar', 'avx2' or 'avx512', got '" + name + "'");
}

std::vector<std::string> cpu_features() {
  const CpuFeatures& f = features();
  std::vector<std::string> names;
  auto add = [&](bool has, const char* name) { if (has) names.emplace_back(name); };
  add(f.sse2, "sse2");
  add(f.sse41, "sse4_1");
  add(f.avx && f.os_avx, "avx");
  add(f.f16c, "f16c");
  add(f.fma, "fma");
  add(f.avx2, "avx2");
  add(f.avx512f && f.os_avx512, "avx512f");
  add(f.avx512dq && f.os_avx512, "avx512dq");
  add(f.avx512cd && f.os_avx512, "avx512cd");
  add(f.avx512bw && f.os_avx512, "avx512bw");
  add(f.avx512vl && f.os_avx512, "avx512vl");
  return names;
}

std::string cpu_vendor() { return features().vendor; }

bool split_line_loads_cheap() {
  static const bool amd = cpu_vendor() == "AuthenticAMD";
  return amd;
}

namespace {
// A detected CPU property that tests can force: -1 (as detected), 0 or 1.
class Forceable {
 public:
  bool value(bool detected) const {
    const int forced = forced_.load(std::memory_order_relaxed);
    return forced >= 0 ? forced == 1 : detected;
  }
  void force(int value) { forced_.store(value < 0 ? -1 : value != 0, std::memory_order_relaxed); }

 private:
  std::atomic<int> forced_{-1};
};
Forceable zmm_shuffles_forced, follows_rows_forced;
}  // namespace

bool zmm_shuffles_cheap() {
  static const bool zen5 = cpu_vendor() == "AuthenticAMD" && features().family >= 0x1A;
  return zmm_shuffles_forced.value(zen5);
}

void set_zmm_shuffles_cheap(int cheap) { zmm_shuffles_forced.force(cheap); }

bool hardware_follows_rows() {
  static const bool zen3_on = cpu_vendor() == "AuthenticAMD" && features().family >= 0x19;
  return follows_rows_forced.value(zen3_on);
}

void set_hardware_follows_rows(int follows) { follows_rows_forced.force(follows); }

namespace {
std::atomic<int64_t> l2_override{0};  // set_l2_cache_bytes; 0: the reported size
}  // namespace

int64_t l2_cache_bytes() {
  static const int64_t reported = [] {
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);  // glibc reads it from CPUID
    return l2 > 0 ? (int64_t)l2 : int64_t(1) << 20;
  }();
  const int64_t set = l2_override.load(std::memory_order_relaxed);
  return set > 0 ? set : reported;
}

void set_l2_cache_bytes(int64_t bytes) { l2_override.store(bytes > 0 ? bytes : 0, std::memory_order_relaxed); }

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

Isa current_isa() { return (Isa)isa_slot().load(std::memory_order_relaxed); }

void set_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("isa '") + isa_name(isa) +
                                "' is not supported by this CPU");
  isa_slot().store((int)isa, std::memory_order_relaxed);
}

}  // namespace pycnn
