// AVX2 + FMA + F16C NVFP4 kernels, for x86-64 machines without AVX-512. Same structure as
// nvfp4_matmul_avx512.cpp (see there) with 8 lanes: a decode group is 64 columns (32 code bytes
// as 8 dwords; nibble s of dword j is column 8j + s). vpermps on ymm indexes only 8 entries
// (bits 2:0), so the lookup gives |E2M1| and the sign (code bit 3) is XORed in from the code.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "backend/cpu/nvfp4_kernels.h"
#include "quant/nvfp4.h"

#define FC_AVX2 __attribute__((target("avx2,fma,f16c")))
#define FC_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline

namespace fc::cpu::detail {
namespace {

constexpr int kLanes = 8;
constexpr int64_t kGroup = 8 * kLanes;  // columns per decode group
// 2 activation rows × 3 weight rows: 6 accumulators + 4 partial sums + decode temporaries fit
// the 16 ymm registers.
constexpr int kMR = 2, kNR = 3;

FC_AVX2_INLINE __m256 e2m1_magnitudes() {
  return _mm256_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f);
}

// The 16 columns of scale block b of a row, unscaled: lo = columns 2j, hi = columns 2j+1.
FC_AVX2_INLINE void decode_block(const uint8_t* row, int64_t b, __m256 mag, __m256& lo,
                                 __m256& hi) {
  const __m256i d =
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + 8 * b)));
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  const __m256i dh = _mm256_srli_epi32(d, 4);
  // Low nibble: magnitude from bits 2:0, sign from bit 3 (shifted to bit 31); high: bits 6:4, 7.
  lo = _mm256_xor_ps(_mm256_permutevar8x32_ps(mag, d),
                     _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(d, 28), sign)));
  hi = _mm256_xor_ps(_mm256_permutevar8x32_ps(mag, dh),
                     _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(d, 24), sign)));
}

// The scales of a decode group's lanes, [s0 s0 s1 s1 s2 s2 s3 s3] · gs, from the group's 4 scale
// bytes (the first n of p): the E4M3 → FP16 bit placement of nvfp4_matmul_avx512.cpp.
FC_AVX2_INLINE __m256 load_scales_dup(const uint8_t* p, int64_t n, __m256 gs256) {
  uint32_t v = 0;
  std::memcpy(&v, p, static_cast<size_t>(std::min<int64_t>(n, 4)));
  __m128i b = _mm_cvtsi32_si128(static_cast<int>(v));
  b = _mm_cvtepu8_epi16(_mm_unpacklo_epi8(b, b));  // words b0 b0 b1 b1 b2 b2 b3 b3
  const __m128i mag = _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x7F)), 7);
  const __m128i sgn = _mm_slli_epi16(_mm_and_si128(b, _mm_set1_epi16(0x80)), 8);
  return _mm256_mul_ps(_mm256_cvtph_ps(_mm_or_si128(mag, sgn)), gs256);
}

template <int MR, int NR>
struct Tile {
  FC_AVX2 static void run(const float* xd, int64_t ldxd, const uint8_t* codes, int64_t ld,
                          const uint8_t* scales, int64_t sld, int64_t K, float gs, float* y,
                          int64_t ldy, bool add) {
    const __m256 mag = e2m1_magnitudes();
    const __m256 gs256 = _mm256_set1_ps(gs * 256.0f);
    const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
    const uintptr_t pf_step = static_cast<uintptr_t>(NR * ld);
    __m256 acc[MR][NR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
    }
    const int64_t blocks = K / 16, full = K / kGroup, groups = (K + kGroup - 1) / kGroup;
    // A final partial group: (K % 64) / 8 dwords of codes loaded, the rest read as 0 (= 0.0).
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(K % kGroup / 8)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int64_t g = 0; g < groups; ++g) {
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) {
        const uint8_t* src = codes + j * ld + 32 * g;
        if (g % 2 == 0) {  // next 64-byte line of the row one tile below
          _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(src) + pf_step),
                       _MM_HINT_T0);
        }
        const __m256i d = g < full ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src))
                                   : _mm256_maskload_epi32(reinterpret_cast<const int*>(src), tail);
        const __m256 sv = load_scales_dup(scales + j * sld + 4 * g, blocks - 4 * g, gs256);
        __m256 pa[MR], pb[MR];  // partial sums over even / odd s
#pragma GCC unroll 8
        for (int sh = 0; sh < 8; ++sh) {
          const __m256 m = _mm256_permutevar8x32_ps(mag, _mm256_srli_epi32(d, 4 * sh));
          const __m256 w = _mm256_xor_ps(
              m, _mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(d, 28 - 4 * sh), sign)));
#pragma GCC unroll 4
          for (int i = 0; i < MR; ++i) {
            const __m256 xv = _mm256_loadu_ps(xd + i * ldxd + g * kGroup + sh * kLanes);
            if (sh == 0) {
              pa[i] = _mm256_mul_ps(xv, w);
            } else if (sh == 1) {
              pb[i] = _mm256_mul_ps(xv, w);
            } else if (sh % 2 == 0) {
              pa[i] = _mm256_fmadd_ps(xv, w, pa[i]);
            } else {
              pb[i] = _mm256_fmadd_ps(xv, w, pb[i]);
            }
          }
        }
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
          acc[i][j] = _mm256_fmadd_ps(_mm256_add_ps(pa[i], pb[i]), sv, acc[i][j]);
        }
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) {
        const __m128 h =
            _mm_add_ps(_mm256_castps256_ps128(acc[i][j]), _mm256_extractf128_ps(acc[i][j], 1));
        const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
        const float s = _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
        y[i * ldy + j] = add ? y[i * ldy + j] + s : s;
      }
    }
  }
};

// Blocked-path panel dequantization, bit-identical to quant::dequantize_row.
FC_AVX2 void dequant(const uint8_t* codes, int64_t ld, const uint8_t* scales, int64_t sld,
                     int64_t rows, int64_t k0, int64_t cols, float gs, float* dst, int64_t ldd) {
  const float* e4m3 = quant::e4m3_table();
  const __m256 mag = e2m1_magnitudes();
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* p = codes + r * ld + k0 / 2;
    const uint8_t* s = scales + r * sld + k0 / 16;
    float* d = dst + r * ldd;
    for (int64_t b = 0; b < cols / 16; ++b) {
      __m256 wl, wh;
      decode_block(p, b, mag, wl, wh);
      const __m256 sv = _mm256_set1_ps(e4m3[s[b]] * gs);
      wl = _mm256_mul_ps(wl, sv);
      wh = _mm256_mul_ps(wh, sv);
      // unpack: [l0 h0 l1 h1 | l4 h4 l5 h5] and [l2 h2 l3 h3 | l6 h6 l7 h7]; then 128-bit halves.
      const __m256 a = _mm256_unpacklo_ps(wl, wh), c = _mm256_unpackhi_ps(wl, wh);
      _mm256_storeu_ps(d + 16 * b, _mm256_permute2f128_ps(a, c, 0x20));
      _mm256_storeu_ps(d + 16 * b + 8, _mm256_permute2f128_ps(a, c, 0x31));
    }
  }
}

}  // namespace

Nvfp4KernelSet nvfp4_kernels_avx2() {
  Nvfp4KernelSet ks;
  ks.name = "avx2";
  ks.x_lanes = kLanes;
  fill_nvfp4_tiles<Tile, kMR, kNR>(ks);
  ks.dequant = &dequant;
  return ks;
}

}  // namespace fc::cpu::detail
