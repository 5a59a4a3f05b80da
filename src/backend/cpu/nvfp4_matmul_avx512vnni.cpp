// AVX-512 VNNI NVFP4 direct (decode) kernels: the weight codes decoded to bytes with vpshufb and
// multiplied with vpdpbusd against the activations held as 24-bit fixed point per 16-column block
// (three int8 planes): the numerics of nvfp4_matmul_avx2i16.cpp at twice the width, with one
// instruction for its vpmaddubsw + vpmaddwd + add.
//
// Why: on the Intel Xeon of docs/benchmarks.md (AVX512-BF16, AMX) vdpbf16ps zmm retires one per
// two cycles, vpdpbusd zmm two per cycle (bench_isa_rates, 12 independent chains: 1.6 against 6.6
// G instructions/s). The bf16 kernels
// (nvfp4_matmul_avx512bf16.cpp) run ~24 cycles per 64 code bytes there and the fp32 ones
// (nvfp4_matmul_avx512.cpp) ~14, both below what two cores stream from DRAM; here 64 code bytes
// take 2 vpshufb, 6 vpdpbusd and ~12 more single-uop operations per activation row.
//
// Numerics (as nvfp4_matmul_avx2i16.cpp): per 16-column block b of an activation row,
// as_b = max_b |x| / 8323072 and q = rint(x · (1 / as_b)), |q| <= 8323073, split into three int8
// planes q = 65536 h + 256 m + l (l, m in [-128, 127], h in [-127, 127]), so each x is
// as_b · q within 1.5 as_b < max_b |x| · 2⁻²². Weights: u = 2·e2m1(code) + 12 in [0, 24]
// (vpdpbusd's unsigned operand); Σ w·x = as_b / 2 · (Σ u·q - 12 Σ q) per block. Every integer
// is exact: a dword lane sums 8 columns, |Σ u·q| <= 8·24·8323073 < 2³¹, and so is every partial
// ((Σ u·h) · 256 + Σ u·m) · 256 + Σ u·l on the way; its conversion to fp32 rounds once. The
// block scales e4m3 · 2⁻⁸ (exact) times as_b / 2 (one rounding) are applied once per 8 columns,
// gs · 2⁸ once per output. Non-finite activations give a NaN block scale, so the outputs they touch
// are NaN.
//
// Decoding 128 columns (64 packed bytes d: byte i holds column 2i in its low nibble, 2i + 1 in
// its high one): ul = vpshufb(lut, d & 0xF) (byte i: u of column 2i), uh = vpshufb(lut,
// (d >> 4) & 0xF) (column 2i + 1). vpdpbusd adds bytes 4n .. 4n+3 into dword n: with ul against
// the even-column plane and uh against the odd-column plane, dword n sums columns 8n .. 8n+7, in
// scale block n/2 — the lane pattern [s0 s0 s1 s1 .. s7 s7] of the other AVX-512 kernels.
// Activation layout (nvfp4_kernels.h, Nvfp4XLayout::kI8Planes): per 128-column group 512 bytes:
//   [0, 64)    h of columns 0, 2, .., 126     [64, 128)  h of columns 1, 3, .., 127
//   [128, 256) m, the same two halves          [256, 384) l, the same two halves
//   [384, 448) int32 c[n] = 12 Σ_{k<8} q[8n + k]
//   [448, 512) fp32  a[n] = as_{n/2} / 2
// zeros past K.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/cpu/avx512_common.h"  // immintrin.h, with its warning pragmas
#include "backend/cpu/nvfp4_kernels.h"

#define FC_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c")))
#define FC_AVX512VNNI_INLINE \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma,f16c"), always_inline)) inline

namespace fc::cpu::detail {
namespace {

using namespace avx512;

constexpr int64_t kGroup = 128;       // columns per decode group
constexpr int64_t kGroupBytes = 512;  // arranged activation bytes per group and row
// 2 activation rows × 4 weight rows: 8 accumulators; more rows share one decode (T = 2..5 steps
// of speculative decoding) without spilling.
constexpr int kMR = 2, kNR = 4;
// Software prefetch distance, at least (bytes), as in the other decode kernels.
constexpr int64_t kPrefetchBytes = 8192;

// u = 2·e2m1(code) + 12 by code (bit 3 = sign), in all four 128-bit lanes (vpshufb looks up per
// lane).
FC_AVX512VNNI_INLINE __m512i u_lut() {
  return _mm512_broadcast_i32x4(
      _mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));
}

// Up to 16 E4M3 scale bytes (the first n of p; others read as 0) as fp32 times 2⁻⁸ (exact): the
// bits placed as FP16 s.0eeee.mmm0000000 (avx512_common.h's load_scales, without its gs · 2⁸,
// applied here once per output). b << 7 puts the sign at bit 14; adding bit 14 to itself moves it
// to bit 15 (bits 15 and up are 0).
FC_AVX512VNNI_INLINE __m512 load_scales_raw(const uint8_t* p, int64_t n) {
  const __mmask16 m = n >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << n) - 1u);
  const __m256i t = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_maskz_loadu_epi8(m, p)), 7);
  return _mm512_cvtph_ps(_mm256_add_epi16(t, _mm256_and_si256(t, _mm256_set1_epi16(0x4000))));
}

// One activation row's group (arranged bytes a) against one weight row's decoded group: the
// dword sums Σ u·q - 12 Σ q of the 16 eight-column lanes, converted to fp32 and scaled.
FC_AVX512VNNI_INLINE __m512 group_dot(__m512i ul, __m512i uh, const uint8_t* a, __m512 sv,
                                      __m512 acc) {
  __m512i t = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ul, _mm512_load_si512(a));
  t = _mm512_dpbusd_epi32(t, uh, _mm512_load_si512(a + 64));
  t = _mm512_slli_epi32(t, 8);
  t = _mm512_dpbusd_epi32(t, ul, _mm512_load_si512(a + 128));
  t = _mm512_dpbusd_epi32(t, uh, _mm512_load_si512(a + 192));
  t = _mm512_slli_epi32(t, 8);
  t = _mm512_dpbusd_epi32(t, ul, _mm512_load_si512(a + 256));
  t = _mm512_dpbusd_epi32(t, uh, _mm512_load_si512(a + 320));
  t = _mm512_sub_epi32(t, _mm512_load_si512(a + 384));
  const __m512 sc = _mm512_mul_ps(sv, _mm512_load_ps(reinterpret_cast<const float*>(a + 448)));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), sc, acc);
}

template <int MR, int NR>
struct Tile {
  FC_AVX512VNNI static void run(const float* xd, int64_t ldxd, const uint8_t* codes, int64_t ld,
                                const uint8_t* scales, int64_t sld, int64_t K, float gs, float* y,
                                int64_t ldy, bool add) {
    const __m512i lut = u_lut(), nib = _mm512_set1_epi8(0x0F);
    const __m512 gs256 = _mm512_set1_ps(gs * 256.0f);
    const __m512i dup0 = scale_dup_index(0), dup1 = scale_dup_index(1);
    const uint8_t* xr[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) xr[i] = reinterpret_cast<const uint8_t*>(xd + i * ldxd);
    const uint8_t* wr[NR];
    const uint8_t* sr[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      wr[j] = codes + j * ld;
      sr[j] = scales + j * sld;
    }
    const int64_t tiles_ahead = std::max<int64_t>(1, (kPrefetchBytes + NR * ld - 1) / (NR * ld));
    const uintptr_t pf_codes = static_cast<uintptr_t>(tiles_ahead * NR * ld);
    const uintptr_t pf_scales = static_cast<uintptr_t>(tiles_ahead * NR * sld);

    __m512 acc[MR][NR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
    }

    const int64_t blocks = K / 16, full = K / kGroup, groups = (K + kGroup - 1) / kGroup;
    // A final partial group: its K % 128 / 2 code bytes; the rest read as code 0 (u = 12) against
    // zero activation planes, and zero scales.
    const __mmask64 tail = (uint64_t{1} << ((K % kGroup) / 2)) - 1;
    __m512 s16[NR];
    for (int64_t g = 0; g < groups; ++g) {
      if (g % 2 == 0) {
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) {
          s16[j] = load_scales_raw(sr[j] + 8 * g, blocks - 8 * g);
          if (g % 8 == 0) {
            _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(sr[j]) +
                                                       pf_scales + 8 * g),
                         _MM_HINT_T0);
          }
        }
      }
      const __m512i dup = g % 2 == 0 ? dup0 : dup1;
      const uint8_t* a[MR];
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) a[i] = xr[i] + g * kGroupBytes;
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) {
        const uint8_t* src = wr[j] + 64 * g;
        _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(src) + pf_codes),
                     _MM_HINT_T0);
        const __m512i d = g < full ? _mm512_loadu_si512(src) : _mm512_maskz_loadu_epi8(tail, src);
        const __m512i ul = _mm512_shuffle_epi8(lut, _mm512_and_si512(d, nib));
        const __m512i uh = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(d, 4), nib));
        const __m512 sv = _mm512_permutexvar_ps(dup, s16[j]);
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) acc[i][j] = group_dot(ul, uh, a[i], sv, acc[i][j]);
      }
    }

#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_mul_ps(acc[i][j], gs256);
    }
    store_tile<MR, NR>(acc, y, ldy, add);
  }
};

// x [T, K] into the kI8Planes layout, 128 columns at a time (zeros past K). The block scales
// come from q24_block_scale and q is rounded as in nvfp4_matmul_avx2i16.cpp, so both integer
// kernels see the same activations.
FC_AVX512VNNI void arrange(const float* x, int64_t T, int64_t ldx, int64_t K, float* xd,
                           int64_t ldxd) {
  const int64_t groups = (K + kGroup - 1) / kGroup;
  (void)ldxd;
  const __m512 inf = _mm512_set1_ps(INFINITY);
  // Even / odd columns of a 32-column pair of q vectors (vpermt2d indices into (q0, q1)).
  alignas(64) int32_t ie[16], io[16];
  for (int l = 0; l < 16; ++l) {
    ie[l] = 2 * l;
    io[l] = 2 * l + 1;
  }
  const __m512i pe = _mm512_load_si512(ie), po = _mm512_load_si512(io);
  const __m512i r128 = _mm512_set1_epi32(128);
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * ldx;
    uint8_t* out = reinterpret_cast<uint8_t*>(xd + t * ldxd);
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t k0 = g * kGroup;
      __m512i q[8];
      alignas(64) float ascale[16];
      alignas(64) int32_t corr[16];
      for (int b = 0; b < 8; ++b) {
        const int64_t k = k0 + 16 * b;
        const int64_t left = std::clamp<int64_t>(K - k, 0, 16);
        const __mmask16 m =
            left >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << left) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(m, xr + std::min(k, K));
        const __m512 av = _mm512_abs_ps(v);
        // |x| < inf is false for inf and NaN.
        const bool finite = _mm512_cmp_ps_mask(av, inf, _CMP_LT_OQ) == 0xFFFF;
        const float mx = _mm512_reduce_max_ps(av);
        const auto [as, inv] = q24_block_scale(mx, finite);
        // vcvtps2dq rounds to nearest even; |x · inv| <= kQ24Max up to one rounding (+1).
        q[b] = _mm512_cvtps_epi32(
            _mm512_mul_ps(finite ? v : _mm512_setzero_ps(), _mm512_set1_ps(inv)));
        ascale[2 * b] = ascale[2 * b + 1] = 0.5f * as;
        alignas(64) int32_t qs[16];
        _mm512_store_si512(qs, q[b]);
        for (int h = 0; h < 2; ++h) {
          int32_t s = 0;
          for (int c = 0; c < 8; ++c) s += qs[8 * h + c];
          corr[2 * b + h] = 12 * s;
        }
      }
      uint8_t* o = out + g * kGroupBytes;
      for (int p = 0; p < 4; ++p) {  // columns 32p .. 32p+31
        for (int par = 0; par < 2; ++par) {
          const __m512i qq = _mm512_permutex2var_epi32(q[2 * p], par == 0 ? pe : po, q[2 * p + 1]);
          // Arithmetic shifts (floor): H = (q + 128) >> 8, h = (H + 128) >> 8.
          const __m512i H = _mm512_srai_epi32(_mm512_add_epi32(qq, r128), 8);
          const __m512i h = _mm512_srai_epi32(_mm512_add_epi32(H, r128), 8);
          const __m512i mm = _mm512_sub_epi32(H, _mm512_slli_epi32(h, 8));
          const __m512i l = _mm512_sub_epi32(qq, _mm512_slli_epi32(H, 8));
          uint8_t* op = o + 64 * par + 16 * p;
          _mm_store_si128(reinterpret_cast<__m128i*>(op), _mm512_cvtepi32_epi8(h));
          _mm_store_si128(reinterpret_cast<__m128i*>(op + 128), _mm512_cvtepi32_epi8(mm));
          _mm_store_si128(reinterpret_cast<__m128i*>(op + 256), _mm512_cvtepi32_epi8(l));
        }
      }
      std::memcpy(o + 384, corr, sizeof(corr));
      std::memcpy(o + 448, ascale, sizeof(ascale));
    }
  }
}

}  // namespace

Nvfp4KernelSet nvfp4_kernels_avx512_vnni() {
  Nvfp4KernelSet ks = nvfp4_kernels_avx512();  // the fp32 panel dequantization for prefill
  ks.name = "avx512-vnni";
  ks.x_layout = Nvfp4XLayout::kI8Planes;
  ks.arrange = &arrange;
  fill_nvfp4_tiles<Tile, kMR, kNR>(ks);
  return ks;
}

}  // namespace fc::cpu::detail
