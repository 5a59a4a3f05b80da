// Pieces shared by the AVX2 NVFP4 direct (decode) kernels that multiply in integers:
// nvfp4_matmul_avx2i16.cpp (exact: 24-bit activations in three int8 planes) and
// nvfp4_decode_i8_avx2.cpp (opt-in: one int8 plane). Both read one 32-byte load of codes per
// 64 columns of a weight row and multiply the unsigned u = 2·e2m1 + 12 with vpmaddubsw.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#define FC_AVX2 __attribute__((target("avx2,fma,f16c")))
#define FC_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline

namespace fc::cpu::detail::avx2_int {

// Software prefetch distance, at least (bytes), as in the other decode kernels.
inline constexpr int64_t kPrefetchBytes = 8192;

// The codes of 64 columns (32 bytes d: byte i holds column 2i in its low nibble, 2i + 1 in its
// high one) as u = 2·e2m1(code) + 12 in [0, 24]: ul for columns 0, 2, .., 62, uh for 1, 3, .., 63.
FC_AVX2_INLINE void decode_u(__m256i d, __m256i& ul, __m256i& uh) {
  // u by code (bit 3 = sign), in both 128-bit lanes (vpshufb looks up per lane).
  const __m256i lut = _mm256_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0,
                                       12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);
  const __m256i nib = _mm256_set1_epi8(0x0F);
  ul = _mm256_shuffle_epi8(lut, _mm256_and_si256(d, nib));
  uh = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(d, 4), nib));
}

// 32 bytes of arranged activations (32-byte aligned).
FC_AVX2_INLINE __m256i ld32(const uint8_t* a, int off) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(a + off));
}

// Lane sum of a.
FC_AVX2_INLINE float hsum(__m256 a) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
}

// How far ahead (bytes) a tile of nr rows of ld bytes prefetches: whole tiles, >= kPrefetchBytes.
inline int64_t prefetch_ahead(int nr, int64_t ld) {
  return std::max<int64_t>(1, (kPrefetchBytes + nr * ld - 1) / (nr * ld)) * nr * ld;
}

// Prefetches never fault, so the address may run past the matrix (formed as an integer).
FC_AVX2_INLINE void prefetch(const uint8_t* p, int64_t ahead) {
  _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + ahead), _MM_HINT_T0);
}

}  // namespace fc::cpu::detail::avx2_int
