// AVX2 direct (decode) tiles of the opt-in int8 NVFP4 path (CpuOptions::decode_int8; layout and
// arithmetic: nvfp4_prefill_i8_kernels.h). NOT exact: the activations are the int8 ones of
// quantize_row_i8, as in the int8 prefill.
//
// Why: the exact AVX2 decode kernel (nvfp4_matmul_avx2i16.cpp) holds each activation as three
// int8 planes (24-bit fixed point) and spends 6 vpmaddubsw + 3 vpmaddwd per 64 weights and
// activation row; it is compute-bound at ~6 GB/s of packed weights per Zen 3 core, below what two
// cores stream from DRAM. One int8 plane needs 2 vpmaddubsw + 1 vpmaddwd, the scheme of
// llama.cpp's Q4 × Q8 dot products.
//
// Per 64-column group of a weight row (32 code bytes d, 4 scale bytes): lo = d & 0xF holds the
// codes of columns 2i, hi = d >> 4 those of 2i + 1; u = pshufb(lut, code) = 2·e2m1 + 12 in
// [0, 24] (unsigned, as vpmaddubsw wants). vpmaddubsw(u_lo, q_even) + vpmaddubsw(u_hi, q_odd):
// int16 lane m = Σ of columns 4m .. 4m+3, |.| <= 4 · 24 · 127 = 12192 < 2¹⁵ (no saturation);
// vpmaddwd with ones: dword n = columns 8n .. 8n+7 (scale block n / 2), exact; minus
// c[n] = 12 Σ q gives Σ q · 2·e2m1 exactly. Then acc += float(dword) · (e4m3 · 2⁻⁸) · a[n] and
// the row sum times gs at the end.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "backend/cpu/nvfp4_avx2_int.h"
#include "backend/cpu/nvfp4_prefill_i8_kernels.h"

namespace fc::cpu::detail {
namespace {

using avx2_int::decode_u;
using avx2_int::hsum;
using avx2_int::ld32;

// The 8 scale bytes of two groups (little-endian) as fp32 lanes [s0 s0 s1 s1 s2 s2 s3 s3] (first
// group) and [s4 s4 .. s7 s7] (second), times 2⁻⁸: E4M3 s.eeee.mmm placed as FP16
// s.0eeee.mmm0000000 is the same number times 2⁻⁸ (subnormals too), widened exactly by
// vcvtph2ps. The byte sign-extended to 16 bits and shifted left by 7 is s.s.eeee.mmm.0000000:
// clearing bit 14 leaves the FP16 placement. One decode per two groups (it is a quarter of a
// group's instructions otherwise).
struct Scales2 {
  __m256 lo, hi;
};
FC_AVX2_INLINE Scales2 group_scales2(uint64_t v) {
  const __m128i t =
      _mm_slli_epi16(_mm_cvtepi8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(v))), 7);
  const __m256 f = _mm256_cvtph_ps(_mm_and_si128(t, _mm_set1_epi16(static_cast<short>(0xBFFF))));
  return {_mm256_permutevar8x32_ps(f, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)),
          _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7))};
}

// One weight row's group (codes d, scales ws of group_scales2) against MR arranged activation
// groups a[i].
template <int MR>
FC_AVX2_INLINE void group_dot(__m256i d, __m256 ws, const uint8_t* const (&a)[MR],
                              __m256 (&acc)[MR]) {
  __m256i ul, uh;
  decode_u(d, ul, uh);
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    // Read the activations from L1 for every weight row (memory operands): kept in registers
    // across the rows of a tile, as the compiler would, they push the accumulators to the stack.
    const uint8_t* ai = a[i];
    __asm__("" : "+r"(ai));
    const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(ul, ld32(ai, 0)),
                                         _mm256_maddubs_epi16(uh, ld32(ai, 32)));
    const __m256i s32 =
        _mm256_sub_epi32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)), ld32(ai, 64));
    const __m256 sc = _mm256_mul_ps(ws, _mm256_load_ps(reinterpret_cast<const float*>(ai + 96)));
    acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32), sc, acc[i]);
  }
}

template <int MR, int NR>
struct Tile {
  FC_AVX2 static void run(const uint8_t* xd, int64_t ldxd, const uint8_t* codes, int64_t ld,
                          const uint8_t* scales, int64_t sld, int64_t K, float gs, float* y,
                          int64_t ldy, bool add) {
    const int64_t pf_codes = avx2_int::prefetch_ahead(NR, ld);
    const int64_t pf_scales = pf_codes / ld * sld;
    __m256 acc[NR][MR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) acc[j][i] = _mm256_setzero_ps();
    }
    const int64_t full = K / kI8DirectGroup;
    // Two groups (128 columns: 64 code bytes, one cache line, and 8 scale bytes) per step.
    int64_t g = 0;
    for (; g + 2 <= full; g += 2) {
      const uint8_t* a0[MR];
      const uint8_t* a1[MR];
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        a0[i] = xd + i * ldxd + g * kI8DirectGroupBytes;
        a1[i] = a0[i] + kI8DirectGroupBytes;
      }
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) {
        const uint8_t* src = codes + j * ld + 32 * g;
        const uint8_t* sp = scales + j * sld + 4 * g;
        avx2_int::prefetch(src, pf_codes);
        if (g % 16 == 0) avx2_int::prefetch(sp, pf_scales);
        uint64_t sv;
        std::memcpy(&sv, sp, 8);
        const Scales2 ws = group_scales2(sv);
        group_dot<MR>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src)), ws.lo, a0, acc[j]);
        group_dot<MR>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 32)), ws.hi, a1,
                      acc[j]);
      }
    }
    // The rest: one whole group and / or the last, partial one ((K % 64) / 2 code bytes).
    for (; g * kI8DirectGroup < K; ++g) {
      const int64_t cols = std::min(kI8DirectGroup, K - g * kI8DirectGroup);
      const uint8_t* a[MR];
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) a[i] = xd + i * ldxd + g * kI8DirectGroupBytes;
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) {
        alignas(32) uint8_t tmp[32] = {};
        uint64_t sv = 0;
        std::memcpy(tmp, codes + j * ld + 32 * g, static_cast<size_t>(cols / 2));
        std::memcpy(&sv, scales + j * sld + 4 * g, static_cast<size_t>(cols / 16));
        group_dot<MR>(_mm256_load_si256(reinterpret_cast<const __m256i*>(tmp)),
                      group_scales2(sv).lo, a, acc[j]);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) {
        const float s = hsum(acc[j][i]) * gs;
        y[i * ldy + j] = add ? y[i * ldy + j] + s : s;
      }
    }
  }
};

template <int... I>
void fill(I8Kernels& ks, std::integer_sequence<int, I...>) {
  ((ks.direct[I / kI8DirectNR][I % kI8DirectNR] =
        &Tile<I / kI8DirectNR + 1, I % kI8DirectNR + 1>::run),
   ...);
}

}  // namespace

void fill_i8_direct_avx2(I8Kernels& ks) {
  fill(ks, std::make_integer_sequence<int, kI8DirectMR * kI8DirectNR>());
}

}  // namespace fc::cpu::detail
