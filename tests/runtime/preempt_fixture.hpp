// SPDX-License-Identifier: Apache-2.0
// preempt_fixture.hpp — what the preemption tests share (test_preempt.cpp and
// test_preempt_scopes.cpp): whether this build can hard-preempt, the hogs' computations and
// their register checksums, the thread-pointer probe, /proc thread names, one-worker options.
#pragma once

#include <dirent.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "fixture.hpp"

namespace stackless_test::preempt {

using namespace stackless_test;
namespace this_tasklet = stackless::this_tasklet;

// ---- helpers ----------------------------------------------------------------------------------

// The runtime's own test (preempt.cpp): GCC's macro, or clang's feature check.
#if defined(__SANITIZE_THREAD__)
#define PREEMPT_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PREEMPT_TEST_TSAN 1
#endif
#endif

/// built_for_hard_preemption() tells whether the runtime, as built, installs the hard-preemption
/// handler: x86-64, not ThreadSanitizer, a CPU/OS with xsave (preempt.cpp checks OSXSAVE).
inline bool built_for_hard_preemption() {
#if !defined(__x86_64__) || defined(PREEMPT_TEST_TSAN)
  return false;
#else
  if (tsan) return false;
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 27));
#endif
}

/// no_hard_preemption() is why the hard-preemption tests skip (nullptr: they run): the build
/// cannot hard-preempt, or the test mode says ThreadSanitizer (STACKLESS_TEST_MODE=tsan).
inline const char* no_hard_preemption() {
#if !defined(__x86_64__)
  return "hard preemption is x86-64 only";
#else
  const char* mode = std::getenv("STACKLESS_TEST_MODE");
  if (tsan || (mode && std::string(mode) == "tsan"))
    return "hard preemption is disabled under ThreadSanitizer (it defers asynchronous signals)";
  if (!built_for_hard_preemption())
    return "no hard preemption in this build (ThreadSanitizer, or no OSXSAVE)";
  return nullptr;
#endif
}

#define SKIP_WITHOUT_HARD_PREEMPTION()                                       \
  do {                                                                       \
    if (const char* why_not = no_hard_preemption()) GTEST_SKIP() << why_not; \
  } while (0)

/// thread_pointer() is this thread's %fs base (its TCB address): a tasklet that moved to another
/// worker thread reads a different value. A volatile asm, re-executed every time (a compiler may
/// otherwise assume the thread pointer is constant within a function).
inline std::uintptr_t thread_pointer() {
#if defined(__x86_64__)
  std::uintptr_t p;
  __asm__ volatile("movq %%fs:0, %0" : "=r"(p));
  return p;
#else
  return 0;
#endif
}

/// checksum is what a computation leaves in its registers, compared bit for bit.
struct checksum {
  double f[16] = {};
  std::uint64_t h = 0, g = 0;
  bool operator==(const checksum& o) const {
    for (int i = 0; i < 16; ++i)
      if (std::bit_cast<std::uint64_t>(f[i]) != std::bit_cast<std::uint64_t>(o.f[i])) return false;
    return h == o.h && g == o.g;
  }
};

constexpr std::uint64_t rotl13(std::uint64_t x) { return (x << 13) | (x >> 51); }

/// compute_scalar() is pure computation — a dependent chain of doubles (xmm registers), and
/// integer hashes (general registers) — no call, no memory but the stack. Every 1024 iterations it
/// reads the thread pointer and counts changes into *moves.
inline __attribute__((noinline)) checksum compute_scalar(long iters, std::uint64_t seed,
                                                         long* moves) {
  double x = 1.0 + static_cast<double>(seed), y = 0.5, z = 0.25, w = 2.0;
  std::uint64_t h = 1469598103934665603ull ^ seed, g = seed * 0x9e3779b97f4a7c15ull + 1;
  std::uintptr_t tp = thread_pointer();
  long changes = 0;
  for (long i = 0; i < iters; ++i) {
    x = x * 1.0000001 + y * 0.999999;
    y = std::sqrt(x) * 0.5 + static_cast<double>(i & 7);
    z = z * 0.999999 + y * 0.5;
    w = w * 0.5 - z * 1e-6;
    if (x > 1e6) x *= 1e-6;
    h = (h ^ static_cast<std::uint64_t>(i)) * 1099511628211ull;
    g = rotl13(g ^ h) + static_cast<std::uint64_t>(i);
    if ((i & 1023) == 0) {
      const std::uintptr_t now = thread_pointer();
      if (now != tp) {
        ++changes;
        tp = now;
      }
    }
  }
  *moves = changes;
  checksum r;
  r.f[0] = x;
  r.f[1] = y;
  r.f[2] = z;
  r.f[3] = w;
  r.h = h;
  r.g = g;
  return r;
}

#if defined(__x86_64__)
/// compute_avx() is compute_scalar() on four 256-bit registers (their upper halves are what an
/// fxsave-only save would lose), plus the integer hashes.
inline __attribute__((target("avx"), noinline)) checksum compute_avx(long iters, std::uint64_t seed,
                                                                     long* moves) {
  __m256d a = _mm256_set_pd(1.0 + static_cast<double>(seed), 1.25, 1.5, 1.75);
  __m256d b = _mm256_set1_pd(0.5);
  __m256d c = _mm256_set_pd(0.1, 0.2, 0.3, 0.4 + static_cast<double>(seed));
  __m256d d = _mm256_set1_pd(2.0);
  const __m256d k1 = _mm256_set1_pd(1.0000001), k2 = _mm256_set1_pd(0.999999);
  const __m256d half = _mm256_set1_pd(0.5), lim = _mm256_set1_pd(1e6),
                shrink = _mm256_set1_pd(1e-6);
  std::uint64_t h = 1469598103934665603ull ^ seed, g = seed * 0x9e3779b97f4a7c15ull + 1;
  std::uintptr_t tp = thread_pointer();
  long changes = 0;
  for (long i = 0; i < iters; ++i) {
    a = _mm256_add_pd(_mm256_mul_pd(a, k1), _mm256_mul_pd(b, k2));
    b = _mm256_add_pd(_mm256_mul_pd(_mm256_sqrt_pd(a), half),
                      _mm256_set1_pd(static_cast<double>(i & 7)));
    c = _mm256_add_pd(_mm256_mul_pd(c, k2), _mm256_mul_pd(b, half));
    d = _mm256_sub_pd(_mm256_mul_pd(d, half), _mm256_mul_pd(c, shrink));
    a = _mm256_blendv_pd(a, _mm256_mul_pd(a, shrink), _mm256_cmp_pd(a, lim, _CMP_GT_OQ));
    h = (h ^ static_cast<std::uint64_t>(i)) * 1099511628211ull;
    g = rotl13(g ^ h) + static_cast<std::uint64_t>(i);
    if ((i & 1023) == 0) {
      const std::uintptr_t now = thread_pointer();
      if (now != tp) {
        ++changes;
        tp = now;
      }
    }
  }
  *moves = changes;
  checksum r;
  _mm256_storeu_pd(&r.f[0], a);
  _mm256_storeu_pd(&r.f[4], b);
  _mm256_storeu_pd(&r.f[8], c);
  _mm256_storeu_pd(&r.f[12], d);
  r.h = h;
  r.g = g;
  return r;
}

/// compute_avx512() is the same on six 512-bit registers (more live values than zmm0-15 hold
/// with the constants, so zmm16-31 take part too) with a mask-register blend: the AVX-512 state
/// (upper zmm halves, zmm16-31, opmasks) is in the xsave area as well.
///
/// Not instrumented by ASan: with detect_stack_use_after_return=1 ASan moves the frame's arrays
/// to its fake stack, which aligns them to 32 bytes, while GCC 12 keeps the 64-byte alignment it
/// chose for `lanes` and stores to it with vmovapd — a general-protection fault (SEGV) on the
/// plain thread before any tasklet ran. The function touches only its own locals and `*moves`.
inline __attribute__((target("avx512f"), noinline, no_sanitize("address"))) checksum compute_avx512(
    long iters, std::uint64_t seed, long* moves) {
  const double sd = static_cast<double>(seed);
  __m512d a0 = _mm512_set_pd(1.0 + sd, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7);
  __m512d a1 = _mm512_set_pd(2.0, 2.1 + sd, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7);
  __m512d b0 = _mm512_set1_pd(0.5), b1 = _mm512_set1_pd(0.25);
  __m512d c0 = _mm512_set_pd(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8 + sd), c1 = _mm512_set1_pd(3.0);
  const __m512d k1 = _mm512_set1_pd(1.0000001), k2 = _mm512_set1_pd(0.999999);
  const __m512d half = _mm512_set1_pd(0.5), lim = _mm512_set1_pd(1e6),
                shrink = _mm512_set1_pd(1e-6);
  std::uint64_t h = 1469598103934665603ull ^ seed, g = seed * 0x9e3779b97f4a7c15ull + 1;
  std::uintptr_t tp = thread_pointer();
  long changes = 0;
  // The square roots are _mm512_mask_sqrt_pd(v, all lanes, v): the plain _mm512_sqrt_pd() makes
  // GCC 12 warn (maybe-uninitialized, GCC bug 105593) on its _mm512_undefined_pd().
  for (long i = 0; i < iters; ++i) {
    const __m512d step = _mm512_set1_pd(static_cast<double>(i & 7));
    a0 = _mm512_add_pd(_mm512_mul_pd(a0, k1), _mm512_mul_pd(b0, k2));
    a1 = _mm512_add_pd(_mm512_mul_pd(a1, k2), _mm512_mul_pd(b1, k1));
    b0 = _mm512_add_pd(_mm512_mul_pd(_mm512_mask_sqrt_pd(a0, 0xFF, a0), half), step);
    b1 = _mm512_add_pd(_mm512_mul_pd(_mm512_mask_sqrt_pd(a1, 0xFF, a1), half), b0);
    c0 = _mm512_add_pd(_mm512_mul_pd(c0, k2), _mm512_mul_pd(b1, half));
    c1 = _mm512_sub_pd(_mm512_mul_pd(c1, half), _mm512_mul_pd(c0, shrink));
    a0 = _mm512_mask_mul_pd(a0, _mm512_cmp_pd_mask(a0, lim, _CMP_GT_OQ), a0, shrink);
    a1 = _mm512_mask_mul_pd(a1, _mm512_cmp_pd_mask(a1, lim, _CMP_GT_OQ), a1, shrink);
    h = (h ^ static_cast<std::uint64_t>(i)) * 1099511628211ull;
    g = rotl13(g ^ h) + static_cast<std::uint64_t>(i);
    if ((i & 1023) == 0) {
      const std::uintptr_t now = thread_pointer();
      if (now != tp) {
        ++changes;
        tp = now;
      }
    }
  }
  *moves = changes;
  double lanes[48];
  _mm512_storeu_pd(&lanes[0], a0);
  _mm512_storeu_pd(&lanes[8], a1);
  _mm512_storeu_pd(&lanes[16], b0);
  _mm512_storeu_pd(&lanes[24], b1);
  _mm512_storeu_pd(&lanes[32], c0);
  _mm512_storeu_pd(&lanes[40], c1);
  checksum r;
  for (int k = 0; k < 48; ++k) {
    if (k < 16) r.f[k] = lanes[k];
    g = rotl13(g ^ std::bit_cast<std::uint64_t>(lanes[k]));  // every lane, bit for bit
  }
  r.h = h;
  r.g = g;
  return r;
}
#endif

/// kind is which register file a hog's computation keeps busy.
enum class kind { scalar, avx, avx512 };

inline const char* kind_name(kind k) {
  return k == kind::scalar ? "scalar" : k == kind::avx ? "AVX" : "AVX-512";
}

/// kind_of() rotates hogs over the kinds this CPU has (scalar where it lacks one).
inline kind kind_of(unsigned i) {
#if defined(__x86_64__)
  const kind k = static_cast<kind>(i % 3);
  if (k == kind::avx && __builtin_cpu_supports("avx")) return k;
  if (k == kind::avx512 && __builtin_cpu_supports("avx512f")) return k;
#else
  (void)i;
#endif
  return kind::scalar;
}

inline checksum compute(kind k, long iters, std::uint64_t seed, long* moves) {
#if defined(__x86_64__)
  if (k == kind::avx) return compute_avx(iters, seed, moves);
  if (k == kind::avx512) return compute_avx512(iters, seed, moves);
#else
  (void)k;
#endif
  return compute_scalar(iters, seed, moves);
}

/// One scope's worth of work: ~1M iterations, several quanta of 1 ms on any machine this runs on
/// (the exact length does not matter: preemption happens whenever it lasts a quantum or more).
constexpr long scope_iters = 1'000'000;

/// threads_named() counts this process's threads whose name (/proc/self/task/*/comm) is `name`.
inline int threads_named(const std::string& name) {
  int n = 0;
  DIR* dir = ::opendir("/proc/self/task");
  if (!dir) return -1;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string comm;
    if (f && std::getline(f, comm) && comm == name) ++n;
  }
  ::closedir(dir);
  return n;
}

/// hang_guard aborts with a message when a plain TEST runs for 200 s (before CTest's 300 s kill).
class hang_guard {
 public:
  hang_guard()
      : w_("hang guard of " +
               std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()),
           200s, [] { return std::uint64_t{0}; }) {}

 private:
  watchdog w_;
};

/// one_worker() options: one worker, quantum `q`, no stall lines unless a test wants them.
inline sl::options one_worker(std::chrono::microseconds q, const char* name) {
  sl::options o;
  o.workers = 1;
  o.quantum = q;
  o.stall_warning = 0ms;
  o.deadlock_grace = 5s;
  o.name = name;
  return o;
}

}  // namespace stackless_test::preempt
