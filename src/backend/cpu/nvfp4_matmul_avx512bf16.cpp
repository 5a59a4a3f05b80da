// AVX-512 + BF16 NVFP4 direct (decode) kernels: codes decoded to bf16 in registers and multiplied
// with vdpbf16ps against the activations split into two bf16 parts, x ≈ hi + lo.
//
// Why: on Zen 5 the fp32 kernels (nvfp4_matmul_avx512.cpp) decode 16 weights per permute and
// multiply 16 per FMA, ~33 GB/s of packed weights per core with the weights in L2, below what
// two cores can stream from DRAM. Here one vpermw decodes 32 weights and one vdpbf16ps multiplies
// 32 weights by 32 activation parts: ~46 GB/s per core in the same measurement (bench_nvfp4).
//
// Exactness: an E2M1 value is exact in bf16 (at most 2 significant bits), so each product is
// exact and the only change against fp32 activations is x - (hi + lo): hi = bf16(x) and
// lo = bf16(x - hi) (x - hi is exact in fp32), |x - hi| <= 2⁻⁸·|x| and lo is within half a bf16 ulp
// of it, so |x - hi - lo| <= 2⁻¹⁷·|x| (measured: 4.3e-6 = 2⁻¹⁷·⁸ at x = 0.4406). The sums are fp32
// as before (vdpbf16ps treats bf16 subnormals, below 1e-38, as zero).
//
// Decoding 128 columns (64 packed bytes) of a weight row:
//   d   = the 64 bytes as 32 words; word w holds the codes of columns 4w .. 4w+3 (nibbles 0-3)
//   w_s = vpermw(d >> 4s, lut) for s < 4: vpermw reads index bits 4:0, so with the 16 E2M1
//         values stored twice in the 32-entry table the next nibble's low bit is ignored; lane w
//         is the bf16 of column 4w + s.
// vdpbf16ps adds lanes 2i and 2i+1 into fp32 lane i: columns 8i + s and 8i + 4 + s, both in
// scale block i/2, as in the fp32 kernels, so the block-scale handling is the same.
// Activation layout (nvfp4_kernels.h, Nvfp4XLayout::kBf16HiLo): per 128-column group, 128 bf16
// hi values then 128 lo values, each as 4 vectors (s) of 32 lanes (w): x[g*128 + 4w + s].
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__  // a gcc-only warning group
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstdint>

#include "backend/cpu/avx512_common.h"
#include "backend/cpu/nvfp4_kernels.h"

#define FC_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma")))
#define FC_AVX512BF16_INLINE \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma"), always_inline)) inline

namespace fc::cpu::detail {
namespace {

using namespace avx512;

constexpr int64_t kGroup = 128;  // columns per decode group
// Tiles of 2 activation rows: 4 rows spill registers (measured slower than 2 at T = 4).
constexpr int kMR = 2, kNR = 4;
// Software prefetch distance, at least (bytes), as in the fp32 kernels.
constexpr int64_t kPrefetchBytes = 8192;

// The 16 E2M1 values as bf16, indexed by code (bit 3 = sign), twice.
FC_AVX512BF16_INLINE __m512i e2m1_bf16_lut() {
  return _mm512_broadcast_i64x4(_mm256_setr_epi16(
      0x0000, 0x3F00, 0x3F80, 0x3FC0, 0x4000, 0x4040, 0x4080, 0x40C0,  // 0 .. 6
      static_cast<int16_t>(0x8000), static_cast<int16_t>(0xBF00), static_cast<int16_t>(0xBF80),
      static_cast<int16_t>(0xBFC0), static_cast<int16_t>(0xC000), static_cast<int16_t>(0xC040),
      static_cast<int16_t>(0xC080), static_cast<int16_t>(0xC0C0)));  // -0 .. -6
}

FC_AVX512BF16_INLINE __m512 dot_bf16(__m512 acc, __m512i w, const uint16_t* x) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(w),
                          reinterpret_cast<__m512bh>(_mm512_load_si512(x)));
}

// xd is the kBf16HiLo layout in a float buffer: group g of row i starts at float i*ldxd + g*128
// (512 bytes: 256 bf16, hi then lo).
template <int MR, int NR>
struct Tile {
  FC_AVX512BF16 static void run(const float* xd, int64_t ldxd, const uint8_t* codes, int64_t ld,
                                const uint8_t* scales, int64_t sld, int64_t K, float gs, float* y,
                                int64_t ldy, bool add) {
    const __m512i lut = e2m1_bf16_lut();
    const __m512 gs256 = _mm512_set1_ps(gs * 256.0f);
    const __m512i dup0 = scale_dup_index(0), dup1 = scale_dup_index(1);
    const uint16_t* xr[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) xr[i] = reinterpret_cast<const uint16_t*>(xd + i * ldxd);
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
    // A final partial group: its K % 128 / 2 code bytes, the rest read as code 0 (= 0.0) against
    // zero activations.
    const __mmask64 tail = (uint64_t{1} << ((K % kGroup) / 2)) - 1;
    __m512 s16[NR];
    for (int64_t g = 0; g < groups; ++g) {
      if (g % 2 == 0) {
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) {
          s16[j] = load_scales(sr[j] + 8 * g, blocks - 8 * g, gs256);
          if (g % 8 == 0) {
            _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(sr[j]) +
                                                       pf_scales + 8 * g),
                         _MM_HINT_T0);
          }
        }
      }
      const __m512i dup = g % 2 == 0 ? dup0 : dup1;
      const uint16_t* xg[MR];
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) xg[i] = xr[i] + g * 2 * kGroup;
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) {
        const uint8_t* src = wr[j] + 64 * g;
        _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(src) + pf_codes),
                     _MM_HINT_T0);
        const __m512i d = g < full ? _mm512_loadu_si512(src) : _mm512_maskz_loadu_epi8(tail, src);
        // hi and lo parts in separate sums: two independent dependency chains per row.
        __m512 ph[MR], pl[MR];
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) ph[i] = pl[i] = _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int s = 0; s < 4; ++s) {
          const __m512i idx = s == 0 ? d : _mm512_srli_epi16(d, 4 * s);
          const __m512i w = _mm512_permutexvar_epi16(idx, lut);
#pragma GCC unroll 4
          for (int i = 0; i < MR; ++i) {
            ph[i] = dot_bf16(ph[i], w, xg[i] + 32 * s);
            pl[i] = dot_bf16(pl[i], w, xg[i] + kGroup + 32 * s);
          }
        }
        const __m512 sv = _mm512_permutexvar_ps(dup, s16[j]);
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
          acc[i][j] = _mm512_fmadd_ps(_mm512_add_ps(ph[i], pl[i]), sv, acc[i][j]);
        }
      }
    }

    store_tile<MR, NR>(acc, y, ldy, add);
  }
};

// x [T, K] into the kBf16HiLo layout. Per 128-column group: the 8 fp32 vectors become hi / lo
// bf16 vectors A..D (columns 0-31, .., 96-127; vcvtneps2bf16 rounds to nearest even), then two
// rounds of vpermt2w gather columns ≡ s (mod 4): first {0,1} and {2,3} of each pair (A,B),
// (C,D) as 16 + 16 lanes, then the s-halves of both pairs side by side.
FC_AVX512BF16 void arrange(const float* x, int64_t T, int64_t ldx, int64_t K, float* xd,
                           int64_t ldxd) {
  alignas(64) uint16_t i01[32], i23[32], ilo[32], ihi[32];
  for (int l = 0; l < 16; ++l) {
    // Round 1 from (P, Q) = (cols 0-31, cols 32-63) of a pair: lanes 0-15 column ≡ a (mod 4),
    // lanes 16-31 column ≡ a+1; col c of Q is index 32 + c - 32 = c in the concatenation.
    i01[l] = static_cast<uint16_t>(4 * l);
    i01[16 + l] = static_cast<uint16_t>(4 * l + 1);
    i23[l] = static_cast<uint16_t>(4 * l + 2);
    i23[16 + l] = static_cast<uint16_t>(4 * l + 3);
    // Round 2 from (E, F) (first pair, second pair): their lanes 0-15, or their lanes 16-31.
    ilo[l] = static_cast<uint16_t>(l);
    ilo[16 + l] = static_cast<uint16_t>(32 + l);
    ihi[l] = static_cast<uint16_t>(16 + l);
    ihi[16 + l] = static_cast<uint16_t>(48 + l);
  }
  const __m512i p01 = _mm512_load_si512(i01), p23 = _mm512_load_si512(i23);
  const __m512i plo = _mm512_load_si512(ilo), phi = _mm512_load_si512(ihi);
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * ldx;
    uint16_t* d = reinterpret_cast<uint16_t*>(xd + t * ldxd);
    for (int64_t g = 0; g < ldxd; g += kGroup) {
      __m512i hi[4], lo[4];  // columns 32q .. 32q+31 of the group, in order
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        __m512 v[2];
        for (int h = 0; h < 2; ++h) {
          const int64_t k = g + 32 * q + 16 * h;
          const int64_t left = std::clamp<int64_t>(K - k, 0, 16);
          const __mmask16 m =
              left >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << left) - 1u);
          v[h] = _mm512_maskz_loadu_ps(m, xr + std::min(k, K));
        }
        const __m512bh h16 = _mm512_cvtne2ps_pbh(v[1], v[0]);  // lanes 0-15 from v[0]
        const __m512 back0 = _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm512_castsi512_si256(reinterpret_cast<__m512i>(h16))), 16));
        const __m512 back1 = _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(reinterpret_cast<__m512i>(h16), 1)),
            16));
        hi[q] = reinterpret_cast<__m512i>(h16);
        lo[q] = reinterpret_cast<__m512i>(
            _mm512_cvtne2ps_pbh(_mm512_sub_ps(v[1], back1), _mm512_sub_ps(v[0], back0)));
      }
      uint16_t* out = d + 2 * g;
      for (int part = 0; part < 2; ++part) {
        const __m512i* a = part == 0 ? hi : lo;
        const __m512i e01 = _mm512_permutex2var_epi16(a[0], p01, a[1]);
        const __m512i e23 = _mm512_permutex2var_epi16(a[0], p23, a[1]);
        const __m512i f01 = _mm512_permutex2var_epi16(a[2], p01, a[3]);
        const __m512i f23 = _mm512_permutex2var_epi16(a[2], p23, a[3]);
        uint16_t* o = out + part * kGroup;
        _mm512_store_si512(o, _mm512_permutex2var_epi16(e01, plo, f01));       // s = 0
        _mm512_store_si512(o + 32, _mm512_permutex2var_epi16(e01, phi, f01));  // s = 1
        _mm512_store_si512(o + 64, _mm512_permutex2var_epi16(e23, plo, f23));  // s = 2
        _mm512_store_si512(o + 96, _mm512_permutex2var_epi16(e23, phi, f23));  // s = 3
      }
    }
  }
}

}  // namespace

Nvfp4KernelSet nvfp4_kernels_avx512_bf16() {
  Nvfp4KernelSet ks = nvfp4_kernels_avx512();  // the fp32 panel dequantization for prefill
  ks.name = "avx512-bf16";
  ks.x_layout = Nvfp4XLayout::kBf16HiLo;
  ks.arrange = &arrange;
  fill_nvfp4_tiles<Tile, kMR, kNR>(ks);
  return ks;
}

}  // namespace fc::cpu::detail
