// AVX2 NVFP4 direct (decode) kernels that multiply in integers: the weight codes decoded to bytes
// with one vpshufb per 32 codes and multiplied with vpmaddubsw against the activations held as
// 24-bit fixed point per 16-column block (three int8 planes).
//
// Why: AVX2 has no bf16 dot product, and decoding codes to fp32 (nvfp4_matmul_avx2.cpp: a
// vpermps + 4 shift/logic ops per 8 weights, or bf16 bytes through pshufb + unpacks) is bound
// by the two shuffle/shift pipes of Zen 3 at ~20 cycles per 64 weights, ~5 GB/s of packed
// weights per core, a quarter of what two cores stream from DRAM. Here 64 weights take 2
// vpshufb, 6 vpmaddubsw, 3 vpmaddwd and a few adds per activation row (docs/benchmarks.md).
//
// Numerics. Activations: per 16-column block b of a row, as_b = max_b |x| / 8323072 and
// q = rint(x / as_b), |q| <= 8323072 (+1 from the rounding of x · (1 / as_b)), split into three
// int8 planes q = 65536 h + 256 m + l: l = q - 256 H with H = (q + 128) >> 8, m = H - 256 h with
// h = (H + 128) >> 8, so l, m in [-128, 127] and h in [-127, 127]. Each x is represented as
// as_b · q with |x - as_b · q| <= 1.5 as_b < max_b |x| · 2⁻²² (x · (1 / as_b) is rounded twice in
// fp32 before the rounding to an integer); 16 bits (two planes, 2⁻¹⁶) moved the golden NVFP4
// logits by up to 1.4e-3 of their largest value, 4x the bound of those tests. The
// products and sums are exact integers; block scales (weight e4m3 · activation as_b · gs) are
// applied in fp32 once per 8 columns. Weights: u = 2·e2m1(code) + 12 in [0, 24] (unsigned, as
// vpmaddubsw wants), Σ w·x = (Σ u·q - 12 Σ q) / 2 per block, with 12 Σ q precomputed per
// activation row. No intermediate can overflow: a vpmaddubsw pair is <= 2·24·128 = 6144, two of
// them added <= 12288 < 2¹⁵; a dword lane sums 8 columns, |Σ u·q| <= 8·24·8323073 < 2³¹ and
// |12 Σ q| < 2³⁰; the dword is exact, its conversion to fp32 rounds once (2⁻²⁴ relative).
// Non-finite activations give a NaN block scale, so the outputs they touch are NaN.
//
// Decoding 64 columns (32 packed bytes) of a weight row: lo = d & 0xF (column 2i of byte i),
// hi = (d >> 4) & 0xF (column 2i + 1); u_lo = pshufb(lut, lo), u_hi = pshufb(lut, hi).
// vpmaddubsw(u, a) adds bytes 2m, 2m+1 into int16 lane m, vpmaddwd adds int16 lanes 2n, 2n+1
// into dword n: dword n sums bytes 4n .. 4n+3, columns 8n .. 8n+7, all in scale block n/2; so the
// dword lanes take scales [s0 s0 s1 s1 s2 s2 s3 s3], as in the fp32 kernels.
// Activation layout (nvfp4_kernels.h, Nvfp4XLayout::kI16Planes): per 64-column group 256 bytes:
//   [0, 32)    h of columns 0, 2, .., 62     [32, 64)   h of columns 1, 3, .., 63
//   [64, 96)   m of columns 0, 2, .., 62     [96, 128)  m of columns 1, 3, .., 63
//   [128, 160) l of columns 0, 2, .., 62     [160, 192) l of columns 1, 3, .., 63
//   [192, 224) int32 c[n] = 12 Σ_{k<8} q[8n + k]
//   [224, 256) fp32  a[n] = 128 · as_{n/2} (256 undoes the e4m3-as-fp16 placement, 1/2 the 2·e2m1)
// zeros past K.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/cpu/nvfp4_avx2_int.h"
#include "backend/cpu/nvfp4_kernels.h"

namespace fc::cpu::detail {
namespace {

using avx2_int::decode_u;
using avx2_int::hsum;
using avx2_int::ld32;

constexpr int64_t kGroup = 64;        // columns per decode group
constexpr int64_t kGroupBytes = 256;  // arranged activation bytes per group and row
// 2 activation rows × 4 weight rows: 8 accumulators, the rest of the 16 registers for decode.
constexpr int kMR = 2, kNR = 4;

// The 4 scale bytes of a group (a little-endian dword) as fp32 lanes [s0 s0 s1 s1 s2 s2 s3 s3]
// · 2⁻⁸: E4M3 s.eeee.mmm placed as FP16 s.0eeee.mmm0000000 is the same number times 2⁻⁸
// (subnormals line up too) and vcvtph2ps widens it exactly. b << 7 puts the sign at bit 14;
// adding bit 14 to itself moves it to bit 15 (bits 15 and up are 0): no branch, no table.
FC_AVX2_INLINE __m256 group_scales(uint32_t v) {
  const __m128i dup = _mm_setr_epi8(0, -1, 0, -1, 1, -1, 1, -1, 2, -1, 2, -1, 3, -1, 3, -1);
  const __m128i t =
      _mm_slli_epi16(_mm_shuffle_epi8(_mm_cvtsi32_si128(static_cast<int>(v)), dup), 7);
  return _mm256_cvtph_ps(_mm_add_epi16(t, _mm_and_si128(t, _mm_set1_epi16(0x4000))));
}

// One weight row's 64-column group (codes d, scale dword sv) against MR activation rows (their
// arranged group at a[i]), added into acc[i].
template <int MR>
FC_AVX2_INLINE void group_dot(__m256i d, uint32_t sv, const uint8_t* const (&a)[MR],
                              __m256 (&acc)[MR]) {
  __m256i ul, uh;
  decode_u(d, ul, uh);
  const __m256 ws = group_scales(sv);
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    // Read the activations from L1 for every weight row: kept in registers across the rows of a
    // tile (what the compiler would do) they crowd out the accumulators.
    const uint8_t* ai = a[i];
    __asm__("" : "+r"(ai));
    const __m256i sh = _mm256_add_epi16(_mm256_maddubs_epi16(ul, ld32(ai, 0)),
                                        _mm256_maddubs_epi16(uh, ld32(ai, 32)));
    const __m256i sm = _mm256_add_epi16(_mm256_maddubs_epi16(ul, ld32(ai, 64)),
                                        _mm256_maddubs_epi16(uh, ld32(ai, 96)));
    const __m256i sl = _mm256_add_epi16(_mm256_maddubs_epi16(ul, ld32(ai, 128)),
                                        _mm256_maddubs_epi16(uh, ld32(ai, 160)));
    // Σ u·q = 256 · (256 Σ u·h + Σ u·m) + Σ u·l, per dword (8 columns).
    const __m256i hm = _mm256_add_epi32(_mm256_madd_epi16(sh, _mm256_set1_epi16(256)),
                                        _mm256_madd_epi16(sm, _mm256_set1_epi16(1)));
    const __m256i s32 = _mm256_sub_epi32(
        _mm256_add_epi32(_mm256_slli_epi32(hm, 8), _mm256_madd_epi16(sl, _mm256_set1_epi16(1))),
        ld32(ai, 192));
    const __m256 sc = _mm256_mul_ps(ws, _mm256_load_ps(reinterpret_cast<const float*>(ai + 224)));
    acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32), sc, acc[i]);
  }
}

template <int MR, int NR>
struct Tile {
  FC_AVX2 static void run(const float* xd, int64_t ldxd, const uint8_t* codes, int64_t ld,
                          const uint8_t* scales, int64_t sld, int64_t K, float gs, float* y,
                          int64_t ldy, bool add) {
    const uint8_t* xr[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) xr[i] = reinterpret_cast<const uint8_t*>(xd + i * ldxd);
    const int64_t pf_codes = avx2_int::prefetch_ahead(NR, ld);
    const int64_t pf_scales = pf_codes / ld * sld;

    __m256 acc[NR][MR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) acc[j][i] = _mm256_setzero_ps();
    }
    const int64_t full = K / kGroup;
    for (int64_t g = 0; g < full; ++g) {
      const uint8_t* a[MR];
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) a[i] = xr[i] + g * kGroupBytes;
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) {
        const uint8_t* src = codes + j * ld + 32 * g;
        const uint8_t* sp = scales + j * sld + 4 * g;
        if (g % 2 == 0) avx2_int::prefetch(src, pf_codes);  // one 64-byte line per two groups
        if (g % 16 == 0) avx2_int::prefetch(sp, pf_scales);
        uint32_t sv;
        std::memcpy(&sv, sp, 4);
        group_dot<MR>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src)), sv, a, acc[j]);
      }
    }
    if (full * kGroup <
        K) {  // last, partial group: its (K % 64) / 2 code bytes, K % 64 / 16 scales
      const uint8_t* a[MR];
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) a[i] = xr[i] + full * kGroupBytes;
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) {
        alignas(32) uint8_t tmp[32] = {};
        uint32_t sv = 0;
        std::memcpy(tmp, codes + j * ld + 32 * full, static_cast<size_t>(K % kGroup / 2));
        std::memcpy(&sv, scales + j * sld + 4 * full, static_cast<size_t>(K % kGroup / 16));
        group_dot<MR>(_mm256_load_si256(reinterpret_cast<const __m256i*>(tmp)), sv, a, acc[j]);
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

// x [T, K] into the kI16Planes layout, 64 columns at a time (zeros past K).
FC_AVX2 void arrange(const float* x, int64_t T, int64_t ldx, int64_t K, float* xd, int64_t ldxd) {
  const int64_t groups = (K + kGroup - 1) / kGroup;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * ldx;
    uint8_t* out = reinterpret_cast<uint8_t*>(xd + t * ldxd);
    for (int64_t g = 0; g < groups; ++g) {
      alignas(32) float v[kGroup];
      const int64_t k0 = g * kGroup, n = std::min(kGroup, K - k0);
      if (n == kGroup) {
        std::memcpy(v, xr + k0, sizeof(v));
      } else {
        std::fill(v, v + kGroup, 0.0f);
        std::memcpy(v, xr + k0, static_cast<size_t>(n) * sizeof(float));
      }
      alignas(32) int32_t q[kGroup];
      alignas(32) float ascale[8];
      for (int b = 0; b < 4; ++b) {
        const __m256 v0 = _mm256_load_ps(v + 16 * b), v1 = _mm256_load_ps(v + 16 * b + 8);
        __m256 m = _mm256_max_ps(_mm256_and_ps(v0, abs_mask), _mm256_and_ps(v1, abs_mask));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        // vmaxps returns its second operand when either is NaN: check finiteness separately.
        bool finite = true;
        for (int k = 0; k < 16; ++k) finite = finite && std::isfinite(v[16 * b + k]);
        const float mx = _mm_cvtss_f32(m4);
        const auto [as, inv] = q24_block_scale(mx, finite);
        const __m256 iv = _mm256_set1_ps(inv);
        // vcvtps2dq rounds to nearest even; |x · inv| <= kQ24Max up to one rounding (+1).
        _mm256_store_si256(
            reinterpret_cast<__m256i*>(q + 16 * b),
            _mm256_cvtps_epi32(_mm256_mul_ps(finite ? v0 : _mm256_setzero_ps(), iv)));
        _mm256_store_si256(
            reinterpret_cast<__m256i*>(q + 16 * b + 8),
            _mm256_cvtps_epi32(_mm256_mul_ps(finite ? v1 : _mm256_setzero_ps(), iv)));
        ascale[2 * b] = ascale[2 * b + 1] = 128.0f * as;
      }
      uint8_t* o = out + g * kGroupBytes;
      int32_t corr[8];
      for (int c = 0; c < 8; ++c) {
        int32_t s = 0;
        for (int k = 0; k < 8; ++k) s += q[8 * c + k];
        corr[c] = 12 * s;
      }
      for (int i = 0; i < 32; ++i) {
        for (int par = 0; par < 2; ++par) {
          const int32_t qq = q[2 * i + par];
          const int32_t H = (qq + 128) >> 8;  // arithmetic shifts: floor
          const int32_t h = (H + 128) >> 8;
          o[32 * par + i] = static_cast<uint8_t>(static_cast<int8_t>(h));
          o[64 + 32 * par + i] = static_cast<uint8_t>(static_cast<int8_t>(H - 256 * h));
          o[128 + 32 * par + i] = static_cast<uint8_t>(static_cast<int8_t>(qq - 256 * H));
        }
      }
      std::memcpy(o + 192, corr, sizeof(corr));
      std::memcpy(o + 224, ascale, sizeof(ascale));
    }
  }
}

}  // namespace

Nvfp4KernelSet nvfp4_kernels_avx2_i16() {
  Nvfp4KernelSet ks = nvfp4_kernels_avx2();  // the fp32 panel dequantization for prefill
  ks.name = "avx2-i16";
  ks.x_layout = Nvfp4XLayout::kI16Planes;
  ks.arrange = &arrange;
  fill_nvfp4_tiles<Tile, kMR, kNR>(ks);
  return ks;
}

}  // namespace fc::cpu::detail
