// Runtime settings of moa's libraries that can only be given through the environment, fixed
// before those libraries start. (1) How long idle OpenMP threads spin before they sleep:
// libgomp's default spins up to 300,000 pause instructions at every barrier and between
// parallel regions (milliseconds on CPUs whose pause takes ~100 cycles); on a machine whose cores
// are shared, that spinning takes the CPU from the very thread being waited for
// (docs/threads.md), so moa caps it at kSpinCount unless the user chose OMP_WAIT_POLICY or
// GOMP_SPINCOUNT. (2) OpenBLAS's kernel set: Debian 12's OpenBLAS 0.3.21 does not recognise
// newer AVX-512 CPUs (Sapphire Rapids here) and falls back to its SSE3 kernels (several times
// slower sgemm), so on a CPU (and OS) with AVX-512 F/CD/BW/DQ/VL moa selects its SkylakeX
// kernels unless the user set OPENBLAS_CORETYPE. Both libraries read their variables once, in
// their constructors, and glibc resets the environment after the executable's .preinit_array
// runs, so the only way to hand them a value is the environment of a fresh image: this preinit
// function re-executes moa once with the missing entries added, before any library has started.
#include <cpuid.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace {

constexpr const char* kSpinCountEntry = "GOMP_SPINCOUNT=10000";
constexpr const char* kOpenBlasCoreEntry = "OPENBLAS_CORETYPE=SkylakeX";

// Plain loops rather than libc string functions, which sanitizers intercept and which may not
// be ready this early.
bool has_variable(char** envp, const char* name) {
  for (char** e = envp; *e != nullptr; ++e) {
    const char* entry = *e;
    const char* n = name;
    while (*n != '\0' && *entry == *n) ++entry, ++n;
    if (*n == '\0' && *entry == '=') return true;
  }
  return false;
}

// AVX-512 F, CD, BW, DQ and VL (what OpenBLAS's SkylakeX kernels use), enabled by the OS.
bool cpu_has_avx512_skylakex_set() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0 || (c & bit_OSXSAVE) == 0) return false;
  uint32_t xcr0_lo = 0, xcr0_hi = 0;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  constexpr uint32_t kAvx512State = 0xE6;  // SSE, AVX, opmask, ZMM0-15 high, ZMM16-31
  if ((xcr0_lo & kAvx512State) != kAvx512State) return false;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
  const unsigned needed = bit_AVX512F | bit_AVX512CD | bit_AVX512BW | bit_AVX512DQ | bit_AVX512VL;
  return (b & needed) == needed;
}

// Runs before libc and the libraries are initialised: only system calls and plain memory here.
void set_library_environment(int, char** argv, char** envp) {
  if (argv == nullptr || envp == nullptr) return;
  const bool add_spin =
      !has_variable(envp, "OMP_WAIT_POLICY") && !has_variable(envp, "GOMP_SPINCOUNT");
  const bool add_blas_core =
      !has_variable(envp, "OPENBLAS_CORETYPE") && cpu_has_avx512_skylakex_set();
  if (!add_spin && !add_blas_core) return;
  size_t n = 0;
  while (envp[n] != nullptr) ++n;
  constexpr size_t kMaxEntries = 4096;
  if (n + 3 > kMaxEntries) return;  // an odd environment: keep the libraries' defaults
  char* env[kMaxEntries];
  for (size_t i = 0; i < n; ++i) env[i] = envp[i];
  if (add_spin) env[n++] = const_cast<char*>(kSpinCountEntry);
  if (add_blas_core) env[n++] = const_cast<char*>(kOpenBlasCoreEntry);
  env[n] = nullptr;
  execve("/proc/self/exe", argv, env);  // returns only on failure: run on with the defaults
}

}  // namespace

// Not const: .preinit_array is a writable section, and a const object would conflict with it.
__attribute__((section(".preinit_array"),
               used)) void (*moa_set_library_environment)(int, char**,
                                                          char**) = set_library_environment;
