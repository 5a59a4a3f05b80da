// AVX2 kernels of the int8 NVFP4 prefill (layouts: nvfp4_prefill_i8_kernels.h).
//
// Register tile: 4 activation rows × 8 weight rows (one micro-panel). Per 16-column block the
// 4 weight vectors (8 rows × 4 columns of int8 each) stay in registers; per activation row the
// tile broadcasts 4 bytes of xq four times and runs 4 vpmaddubsw (xq unsigned × codes signed:
// pair sums ≤ 2 · 255 · 12 = 6120, 4 of them ≤ 24480 < 2¹⁵, no saturation), 3 vpaddw, one
// vpmaddwd with ones (the 16-column sum per weight row, int32), subtracts the +128 correction,
// converts to fp32 and adds it scaled by wsc · xs with one FMA. That is 8 multiply-pipe
// instructions per 128 multiply-adds where the fp32 path needs 16 FMAs.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "backend/cpu/nvfp4_prefill_i8_kernels.h"
#include "quant/nvfp4.h"

#define FC_AVX2 __attribute__((target("avx2,fma,f16c")))
#define FC_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline

namespace fc::cpu::detail {
namespace {

// 2·e2m1 of each 4-bit code (bit 3 = sign), twice (vpshufb looks up per 128-bit lane).
FC_AVX2_INLINE __m256i code_lut() {
  return _mm256_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12, 0, 1, 2, 3, 4, 6,
                          8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
}

FC_AVX2 void pack(const uint8_t* codes, int64_t ld, const uint8_t* scales, int64_t sld,
                  int64_t rows, int64_t k0, int64_t kc, float gs, uint8_t* dst) {
  const float* e4m3 = quant::e4m3_table();
  const int64_t blocks = kc / 16;
  const __m256i lut = code_lut(), low4 = _mm256_set1_epi8(0x0F);
  // One micro-panel's rows decoded to int8 (2·e2m1), row-major: 8 × kc bytes (<= 8 KiB at the
  // driver's kc <= 1024).
  alignas(32) int8_t tmp[kI8PanelRows][1024];
  for (int64_t p = 0; p * kI8PanelRows < rows; ++p) {
    uint8_t* d = dst + p * blocks * kI8BlockBytes;
    int32_t sums[kI8PanelRows][1024 / 16];
    float wsc[kI8PanelRows][1024 / 16];
    for (int r = 0; r < kI8PanelRows; ++r) {
      const int64_t n = p * kI8PanelRows + r;
      if (n >= rows) {
        std::memset(tmp[r], 0, static_cast<size_t>(kc));
        for (int64_t b = 0; b < blocks; ++b) sums[r][b] = 0, wsc[r][b] = 0.0f;
        continue;
      }
      const uint8_t* c = codes + n * ld + k0 / 2;
      const uint8_t* s = scales + n * sld + k0 / 16;
      int64_t k = 0;
      for (; k + 64 <= kc; k += 64) {  // 32 code bytes → 64 values
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + k / 2));
        const __m256i lo = _mm256_and_si256(v, low4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        // Per 128-bit lane: unpacklo = columns of bytes 0-7, unpackhi = bytes 8-15.
        const __m256i a = _mm256_shuffle_epi8(lut, _mm256_unpacklo_epi8(lo, hi));
        const __m256i b = _mm256_shuffle_epi8(lut, _mm256_unpackhi_epi8(lo, hi));
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp[r] + k),
                           _mm256_permute2x128_si256(a, b, 0x20));
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp[r] + k + 32),
                           _mm256_permute2x128_si256(a, b, 0x31));
      }
      for (; k < kc; k += 2) {  // the last 16..48 columns
        const uint8_t byte = c[k / 2];
        static constexpr int8_t kV[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
        tmp[r][k] = kV[byte & 0xF];
        tmp[r][k + 1] = kV[byte >> 4];
      }
      for (int64_t b = 0; b < blocks; ++b) {
        // Σ of 16 int8 values: vpsadbw of the values + 128 (unsigned), minus 16 · 128.
        const __m128i v =
            _mm_xor_si128(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp[r] + 16 * b)),
                          _mm_set1_epi8(static_cast<char>(0x80)));
        const __m128i sad = _mm_sad_epu8(v, _mm_setzero_si128());
        sums[r][b] = _mm_cvtsi128_si32(sad) + _mm_extract_epi16(sad, 4) - 2048;
        wsc[r][b] = e4m3[s[b]] * gs;  // as quant::dequantize_row forms its scale
      }
    }
    for (int64_t b = 0; b < blocks; ++b) {
      uint8_t* o = d + b * kI8BlockBytes;
      // Rows 0-3 and 4-7 as 4 dwords each (columns 4s..4s+3 in dword s): 4 × 4 transposes.
      __m128i q[kI8PanelRows];
      for (int r = 0; r < kI8PanelRows; ++r) {
        q[r] = _mm_load_si128(reinterpret_cast<const __m128i*>(tmp[r] + 16 * b));
      }
      for (int h = 0; h < 2; ++h) {
        const __m128i* g = q + 4 * h;
        const __m128i t0 = _mm_unpacklo_epi32(g[0], g[1]), t1 = _mm_unpackhi_epi32(g[0], g[1]);
        const __m128i t2 = _mm_unpacklo_epi32(g[2], g[3]), t3 = _mm_unpackhi_epi32(g[2], g[3]);
        const __m128i cols[4] = {_mm_unpacklo_epi64(t0, t2), _mm_unpackhi_epi64(t0, t2),
                                 _mm_unpacklo_epi64(t1, t3), _mm_unpackhi_epi64(t1, t3)};
        for (int s = 0; s < 4; ++s) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 32 * s + 16 * h), cols[s]);
        }
      }
      for (int r = 0; r < kI8PanelRows; ++r) {
        const int32_t corr = 128 * sums[r][b];
        std::memcpy(o + 128 + 4 * r, &corr, 4);
        std::memcpy(o + 160 + 4 * r, &wsc[r][b], 4);
      }
    }
  }
}

// Largest |x| of 16 floats.
FC_AVX2_INLINE float block_absmax(__m256 a, __m256 b) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 m = _mm256_max_ps(_mm256_and_ps(a, abs_mask), _mm256_and_ps(b, abs_mask));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

FC_AVX2 void quantize(const float* x, int64_t T, int64_t ldx, int64_t K, uint8_t* xq, int64_t ldq,
                      float* xs, int64_t ldxs) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * ldx;
    uint8_t* qr = xq + t * ldq;
    float* sr = xs + t * ldxs;
    for (int64_t b = 0; b < K / 16; ++b) {
      const __m256 v0 = _mm256_loadu_ps(xr + 16 * b), v1 = _mm256_loadu_ps(xr + 16 * b + 8);
      const float amax = block_absmax(v0, v1);
      if (!(amax > 0.0f)) {  // all zeros (or NaN: treated as zeros, as the scalar definition)
        std::memset(qr + 16 * b, 128, 16);
        sr[b] = 0.0f;
        continue;
      }
      const __m256 inv = _mm256_set1_ps(127.0f / amax);
      // cvtps2dq rounds to nearest even (the default MXCSR mode), as nearbyint.
      const __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, inv));
      const __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, inv));
      const __m128i w0 =
          _mm_packs_epi32(_mm256_castsi256_si128(q0), _mm256_extracti128_si256(q0, 1));
      const __m128i w1 =
          _mm_packs_epi32(_mm256_castsi256_si128(q1), _mm256_extracti128_si256(q1, 1));
      const __m128i bytes =
          _mm_xor_si128(_mm_packs_epi16(w0, w1), _mm_set1_epi8(static_cast<char>(0x80)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qr + 16 * b), bytes);
      sr[b] = amax / 127.0f * 0.5f;
    }
  }
}

FC_AVX2_INLINE __m256i bcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

template <int MR>
FC_AVX2 void tile_mr(const uint8_t* xq, int64_t ldq, const float* xs, int64_t ldxs,
                     const uint8_t* panel, int64_t blocks, float* y, int64_t ldy, int nr,
                     bool add) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* pb = panel + b * kI8BlockBytes;
    const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb));
    const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + 32));
    const __m256i w2 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + 64));
    const __m256i w3 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + 96));
    const __m256i corr = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + 128));
    const __m256 wsc = _mm256_load_ps(reinterpret_cast<const float*>(pb + 160));
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const uint8_t* xb = xq + i * ldq + 16 * b;
      __m256i p = _mm256_maddubs_epi16(bcast4(xb), w0);
      p = _mm256_add_epi16(p, _mm256_maddubs_epi16(bcast4(xb + 4), w1));
      p = _mm256_add_epi16(p, _mm256_maddubs_epi16(bcast4(xb + 8), w2));
      p = _mm256_add_epi16(p, _mm256_maddubs_epi16(bcast4(xb + 12), w3));
      const __m256i s = _mm256_sub_epi32(_mm256_madd_epi16(p, ones), corr);
      const __m256 sc = _mm256_mul_ps(wsc, _mm256_broadcast_ss(xs + i * ldxs + b));
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), sc, acc[i]);
    }
  }
  // Unrolled: an indexed accumulator would live in memory (stored on every block).
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    float* yi = y + i * ldy;
    if (nr == kI8PanelRows) {
      _mm256_storeu_ps(yi, add ? _mm256_add_ps(acc[i], _mm256_loadu_ps(yi)) : acc[i]);
      continue;
    }
    alignas(32) float sv[kI8PanelRows];
    _mm256_store_ps(sv, acc[i]);
    for (int j = 0; j < nr; ++j) yi[j] = add ? yi[j] + sv[j] : sv[j];
  }
}

void tile(const uint8_t* xq, int64_t ldq, const float* xs, int64_t ldxs, const uint8_t* panel,
          int64_t blocks, float* y, int64_t ldy, int mr, int nr, bool add) {
  switch (mr) {
    case 1:
      return tile_mr<1>(xq, ldq, xs, ldxs, panel, blocks, y, ldy, nr, add);
    case 2:
      return tile_mr<2>(xq, ldq, xs, ldxs, panel, blocks, y, ldy, nr, add);
    case 3:
      return tile_mr<3>(xq, ldq, xs, ldxs, panel, blocks, y, ldy, nr, add);
    default:
      return tile_mr<4>(xq, ldq, xs, ldxs, panel, blocks, y, ldy, nr, add);
  }
}

}  // namespace

I8Kernels i8_kernels_avx2() {
  I8Kernels ks{&pack, &quantize, &tile};
  fill_i8_direct_avx2(ks);
  return ks;
}

}  // namespace fc::cpu::detail
