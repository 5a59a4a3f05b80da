// Throughput of single AVX-512 instructions on one core: 12 independent dependency chains of one
// zmm instruction, G instructions per second (two per cycle is the most two vector ports give).
// Why the NVFP4 decode kernel set is chosen by measurement: on the Xeon of docs/benchmarks.md
// vdpbf16ps runs at a quarter of vpdpbusd. Not a test: figures only; instructions this CPU lacks
// are skipped.
//   bench_isa_rates
#include <immintrin.h>

#include <chrono>
#include <cstdio>

namespace {

constexpr long kIters = 20000000;  // × 12 instructions

using Clock = std::chrono::steady_clock;

// The 12 chains stay in registers: the empty asm makes each value opaque to the compiler after
// every round, so no chain can be folded, hoisted or merged with another.
#define FC_CHAINS(T, INIT, OP)                                                                  \
  T a0 = INIT, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, \
    a10 = a0, a11 = a0;                                                                         \
  const auto t0 = Clock::now();                                                                 \
  for (long i = 0; i < kIters; ++i) {                                                           \
    OP(a0);                                                                                     \
    OP(a1);                                                                                     \
    OP(a2);                                                                                     \
    OP(a3);                                                                                     \
    OP(a4);                                                                                     \
    OP(a5);                                                                                     \
    OP(a6);                                                                                     \
    OP(a7);                                                                                     \
    OP(a8);                                                                                     \
    OP(a9);                                                                                     \
    OP(a10);                                                                                    \
    OP(a11);                                                                                    \
    __asm__ volatile(""                                                                         \
                     : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6),    \
                       "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));                     \
  }                                                                                             \
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();                    \
  return 12.0 * kIters / s / 1e9

#define FC_T_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16"), noinline))
#define FC_T_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni"), noinline))
#define FC_T_512 __attribute__((target("avx512f,avx512bw,fma"), noinline))

FC_T_BF16 double rate_dpbf16ps() {
  __m512bh b = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x3F803F80));
  __asm__("" : "+v"(b));
#define OP(a) a = _mm512_dpbf16_ps(a, b, b)
  FC_CHAINS(__m512, _mm512_set1_ps(1.0f), OP);
#undef OP
}
FC_T_VNNI double rate_dpbusd() {
  __m512i b = _mm512_set1_epi32(0x01010101);
  __asm__("" : "+v"(b));
#define OP(a) a = _mm512_dpbusd_epi32(a, b, b)
  FC_CHAINS(__m512i, _mm512_set1_epi32(1), OP);
#undef OP
}
FC_T_512 double rate_fmadd() {
  __m512 b = _mm512_set1_ps(1e-9f);
  __asm__("" : "+v"(b));
#define OP(a) a = _mm512_fmadd_ps(a, b, b)
  FC_CHAINS(__m512, _mm512_set1_ps(1.0f), OP);
#undef OP
}
FC_T_512 double rate_permw() {
  __m512i b = _mm512_set1_epi32(3);
  __asm__("" : "+v"(b));
#define OP(a) a = _mm512_permutexvar_epi16(a, b)
  FC_CHAINS(__m512i, _mm512_set1_epi32(1), OP);
#undef OP
}
FC_T_512 double rate_pshufb() {
  __m512i b = _mm512_set1_epi32(3);
  __asm__("" : "+v"(b));
#define OP(a) a = _mm512_shuffle_epi8(b, a)
  FC_CHAINS(__m512i, _mm512_set1_epi32(1), OP);
#undef OP
}
FC_T_512 double rate_srlw() {
#define OP(a) a = _mm512_srli_epi16(a, 1)
  FC_CHAINS(__m512i, _mm512_set1_epi32(-1), OP);
#undef OP
}

}  // namespace

int main() {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  if (!avx512) {
    std::printf("no AVX-512 on this CPU: nothing to measure\n");
    return 0;
  }
  std::printf("G zmm instructions per second, one core, 12 independent chains\n");
  std::printf("%-12s %6.2f\n", "vfmadd231ps", rate_fmadd());
  if (__builtin_cpu_supports("avx512vnni")) std::printf("%-12s %6.2f\n", "vpdpbusd", rate_dpbusd());
  if (__builtin_cpu_supports("avx512bf16"))
    std::printf("%-12s %6.2f\n", "vdpbf16ps", rate_dpbf16ps());
  std::printf("%-12s %6.2f\n", "vpermw", rate_permw());
  std::printf("%-12s %6.2f\n", "vpshufb", rate_pshufb());
  std::printf("%-12s %6.2f\n", "vpsrlw", rate_srlw());
  return 0;
}
