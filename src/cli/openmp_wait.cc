// How long moa's idle OpenMP threads spin before they sleep, fixed before the OpenMP runtime
// starts. libgomp's default spins up to 300,000 pause instructions at every barrier and between
// parallel regions (milliseconds on CPUs whose pause takes ~100 cycles) before it sleeps on a
// futex. On a machine whose cores are shared, that spinning takes the CPU from the very thread
// being waited for (docs/threads.md). moa caps the spin at kSpinCount unless the user chose a
// policy with OMP_WAIT_POLICY or GOMP_SPINCOUNT. libgomp reads those variables once, in its
// constructor, and glibc resets the environment after the executable's .preinit_array runs, so
// the only way to hand libgomp a value is the environment of a fresh image: this preinit
// function re-executes moa once with GOMP_SPINCOUNT added, before any library has started.
#include <unistd.h>

#include <cstddef>

namespace {

constexpr const char* kSpinCountEntry = "GOMP_SPINCOUNT=10000";

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

// Runs before libc and libgomp are initialised: only system calls and plain memory here.
void cap_openmp_spin(int, char** argv, char** envp) {
  if (argv == nullptr || envp == nullptr) return;
  if (has_variable(envp, "OMP_WAIT_POLICY") || has_variable(envp, "GOMP_SPINCOUNT")) return;
  size_t n = 0;
  while (envp[n] != nullptr) ++n;
  constexpr size_t kMaxEntries = 4096;
  if (n + 2 > kMaxEntries) return;  // an odd environment: keep libgomp's default
  char* env[kMaxEntries];
  for (size_t i = 0; i < n; ++i) env[i] = envp[i];
  env[n] = const_cast<char*>(kSpinCountEntry);
  env[n + 1] = nullptr;
  execve("/proc/self/exe", argv, env);  // returns only on failure: run on with the default
}

}  // namespace

// Not const: .preinit_array is a writable section, and a const object would conflict with it.
__attribute__((section(".preinit_array"),
               used)) void (*moa_cap_openmp_spin)(int, char**, char**) = cap_openmp_spin;
