// Pieces shared by the AVX-512 register-tile kernels: the tile epilogue (dense matmul_avx512.cpp
// and both NVFP4 decode kernels) and, for NVFP4 (nvfp4_matmul_avx512.cpp, fp32 products;
// nvfp4_matmul_avx512bf16.cpp, bf16 products), block-scale loading and the per-lane scale
// pattern. Every function carries the AVX-512 F/BW/VL + FMA target and is always inlined, so
// callers must be compiled for (a superset of) that target.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__  // a gcc-only warning group
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstdint>

#define FC_AVX512_COMMON_INLINE \
  __attribute__((target("avx512f,avx512bw,avx512vl,fma"), always_inline)) inline

namespace fc::cpu::detail::avx512 {

// Up to 16 E4M3 scale bytes (the first n of p; others read as 0) as fp32, times gs. The E4M3
// bits s.eeee.mmm placed as the FP16 s.0eeee.mmm0000000 are the same number times 2⁻⁸ (exponent
// bias 15 instead of 7; subnormals line up too), vcvtph2ps widens that exactly, and gs256 =
// gs·256 restores it: one rounding of e4m3·gs, as quant::dequantize_row computes it.
FC_AVX512_COMMON_INLINE __m512 load_scales(const uint8_t* p, int64_t n, __m512 gs256) {
  const __mmask16 m = n >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << n) - 1u);
  const __m256i b = _mm256_cvtepu8_epi16(_mm_maskz_loadu_epi8(m, p));
  const __m256i mag = _mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(0x7F)), 7);
  const __m256i sgn = _mm256_slli_epi16(_mm256_and_si256(b, _mm256_set1_epi16(0x80)), 8);
  return _mm512_mul_ps(_mm512_cvtph_ps(_mm256_or_si256(mag, sgn)), gs256);
}

// Lane j: block 8h + j/2 of a 16-block scale register, the scales of decode group h (of 2):
// in both kernel families fp32 lane j of a 128-column group sums columns of block j/2.
FC_AVX512_COMMON_INLINE __m512i scale_dup_index(int h) {
  return _mm512_add_epi32(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
                          _mm512_set1_epi32(8 * h));
}

// Adds the two 256-bit halves of a.
FC_AVX512_COMMON_INLINE __m256 fold_halves(__m512 a) {
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
  return _mm256_add_ps(_mm512_castps512_ps256(a), hi);
}

// Lane j of the result = sum of the 8 lanes of aj.
FC_AVX512_COMMON_INLINE __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// y[i*ldy + j] (+)= the lane sum of acc[i][j], i < MR, j < NR <= 4.
template <int MR, int NR>
FC_AVX512_COMMON_INLINE void store_tile(const __m512 (&acc)[MR][NR], float* y, int64_t ldy,
                                        bool add) {
  constexpr __mmask8 ymask = static_cast<__mmask8>((1u << NR) - 1u);
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    __m256 f[4];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) f[j] = fold_halves(acc[i][j]);
    for (int j = NR; j < 4; ++j) f[j] = _mm256_setzero_ps();
    __m128 s = hsum4(f[0], f[1], f[2], f[3]);
    float* yi = y + i * ldy;
    if constexpr (NR == 4) {
      if (add) s = _mm_add_ps(s, _mm_loadu_ps(yi));
      _mm_storeu_ps(yi, s);
    } else {
      if (add) s = _mm_add_ps(s, _mm_maskz_loadu_ps(ymask, yi));
      _mm_mask_storeu_ps(yi, ymask, s);
    }
  }
}

}  // namespace fc::cpu::detail::avx512
