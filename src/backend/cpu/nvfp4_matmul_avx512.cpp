// AVX-512 NVFP4 kernels (F + BW + VL + FMA), built like matmul_avx512.cpp: target attributes on
// every SIMD function, everything in an anonymous namespace, called only after the driver checked
// the CPU.
//
// Decoding a weight row, 128 columns (64 packed bytes, one cache line) at a time:
//   d   = the 64 bytes as 16 dwords (no shuffle)
//   w_s = vpermps(d >> 4s, lut) for s < 8: vpermps reads index bits 3:0 only, so lane j gets
//         e2m1 of nibble s of dword j, the code of column 8j + s; lut (the 16 E2M1 values) is
//         exactly one register. The activations come in the matching order (nvfp4_kernels.h,
//         L = 16), so no weight shuffle is needed: 8 permutes per 128 weights, the bottleneck.
// Column 8j + s lies in scale block j/2 for every s, so the 8 products are summed unscaled
// (p = Σ_s x_s · w_s) and scaled once with the lane vector [s0 s0 s1 s1 .. s7 s7] (one more
// permute per row and group).
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

#define FC_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define FC_AVX512_INLINE \
  __attribute__((target("avx512f,avx512bw,avx512vl,fma"), always_inline)) inline

namespace fc::cpu::detail {
namespace {

using namespace avx512;

constexpr int kLanes = 16;
constexpr int64_t kGroup = 8 * kLanes;  // columns per decode group
// Decode tiles: up to 4 activation rows × 4 weight rows (16 accumulators and 2 partial sums per
// activation row; activations are read as memory operands).
constexpr int kMR = 4, kNR = 4;
// Software prefetch distance, at least (bytes): ~2-3 tiles for E2B-sized rows. 8 KiB measured
// no worse than one tile ahead and a little better on short rows (noisy, shared machine).
constexpr int64_t kPrefetchBytes = 8192;

// The 16 E2M1 values, indexed by code (bit 3 = sign).
FC_AVX512_INLINE __m512 e2m1_lut() {
  return _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f,
                        -2.0f, -3.0f, -4.0f, -6.0f);
}

// Lanes 0-7: 0, lanes 8-15: 1; plus 2c selects the scale pair of chunk c of a 16-block group
// (the dequantization's 32-column chunks).
FC_AVX512_INLINE __m512i scale_pair_index() {
  return _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
}

template <int MR, int NR>
struct Tile {
  FC_AVX512 static void run(const float* xd, int64_t ldxd, const uint8_t* codes, int64_t ld,
                            const uint8_t* scales, int64_t sld, int64_t K, float gs, float* y,
                            int64_t ldy, bool add) {
    const __m512 lut = e2m1_lut();
    const __m512 gs256 = _mm512_set1_ps(gs * 256.0f);
    const __m512i dup0 = scale_dup_index(0), dup1 = scale_dup_index(1);
    const float* xr[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) xr[i] = xd + i * ldxd;
    const uint8_t* wr[NR];
    const uint8_t* sr[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      wr[j] = codes + j * ld;
      sr[j] = scales + j * sld;
    }
    // Prefetch targets: the same columns P tiles further down a decode sweep, P such that the
    // distance is >= kPrefetchBytes (short rows: one tile is read faster than DRAM latency).
    // Prefetches never fault, so the address may run past the matrix; it is formed as an
    // integer for that.
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
    __m512 s16[NR];  // block scales (·gs) of groups g, g+1 (16 blocks)
    for (int64_t g = 0; g < groups; ++g) {
      if (g % 2 == 0) {
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) {
          s16[j] = load_scales(sr[j] + 8 * g, blocks - 8 * g, gs256);
          if (g % 8 == 0) {  // one prefetch per 64-byte line of scales
            _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(sr[j]) +
                                                       pf_scales + 8 * g),
                         _MM_HINT_T0);
          }
        }
      }
      const __m512i dup = g % 2 == 0 ? dup0 : dup1;
      const float* xg[MR];
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) xg[i] = xr[i] + g * kGroup;
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) {
        const uint8_t* src = wr[j] + 64 * g;
        _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(src) + pf_codes),
                     _MM_HINT_T0);
        const __m512i d = g < full ? _mm512_loadu_si512(src) : _mm512_maskz_loadu_epi8(tail, src);
        // Two partial sums per activation row (even / odd s) halve the FMA dependency chains.
        __m512 pa[MR], pb[MR];
#pragma GCC unroll 8
        for (int sh = 0; sh < 8; ++sh) {
          const __m512i idx = sh == 0 ? d : _mm512_srli_epi32(d, 4 * sh);
          const __m512 w = _mm512_permutexvar_ps(idx, lut);
#pragma GCC unroll 4
          for (int i = 0; i < MR; ++i) {
            const __m512 xv = _mm512_load_ps(xg[i] + sh * kLanes);
            if (sh == 0) {
              pa[i] = _mm512_mul_ps(xv, w);
            } else if (sh == 1) {
              pb[i] = _mm512_mul_ps(xv, w);
            } else if (sh % 2 == 0) {
              pa[i] = _mm512_fmadd_ps(xv, w, pa[i]);
            } else {
              pb[i] = _mm512_fmadd_ps(xv, w, pb[i]);
            }
          }
        }
        const __m512 sv = _mm512_permutexvar_ps(dup, s16[j]);
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
          acc[i][j] = _mm512_fmadd_ps(_mm512_add_ps(pa[i], pb[i]), sv, acc[i][j]);
        }
      }
    }

    store_tile<MR, NR>(acc, y, ldy, add);
  }
};

// Panel dequantization for the blocked path, per 32 columns: the 16 code bytes zero-extended to
// dwords give the even columns (low nibbles) and, shifted by 4, the odd ones; each is multiplied
// by its block scale (exact: an E2M1 value has at most 2 significant bits, as in
// quant::dequantize_row) and the two are interleaved back into column order.
FC_AVX512 void dequant(const uint8_t* codes, int64_t ld, const uint8_t* scales, int64_t sld,
                       int64_t rows, int64_t k0, int64_t cols, float gs, float* dst, int64_t ldd) {
  const __m512 lut = e2m1_lut();
  const __m512 gs256 = _mm512_set1_ps(gs * 256.0f);
  const __m512i pair0 = scale_pair_index(), two = _mm512_set1_epi32(2);
  // Columns 0-15 of a chunk = lanes 0-7 of (wl, wh) interleaved; columns 16-31 = lanes 8-15.
  const __m512i il0 = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i il1 = _mm512_add_epi32(il0, _mm512_set1_epi32(8));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* p = codes + r * ld + k0 / 2;
    const uint8_t* s = scales + r * sld + k0 / 16;
    float* d = dst + r * ldd;
    __m512 s16 = _mm512_setzero_ps();
    __m512i pair = pair0;
    for (int64_t k = 0; k < cols; k += 32) {
      if (k % 256 == 0) {
        s16 = load_scales(s + k / 16, (cols - k) / 16, gs256);
        pair = pair0;
      }
      const bool whole = cols - k >= 32;
      const __m128i b = whole ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k / 2))
                              : _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + k / 2));
      const __m512i q = _mm512_cvtepu8_epi32(b);
      const __m512 sv = _mm512_permutexvar_ps(pair, s16);
      const __m512 wl = _mm512_mul_ps(_mm512_permutexvar_ps(q, lut), sv);
      const __m512 wh = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), lut), sv);
      _mm512_storeu_ps(d + k, _mm512_permutex2var_ps(wl, il0, wh));
      if (whole) _mm512_storeu_ps(d + k + 16, _mm512_permutex2var_ps(wl, il1, wh));
      pair = _mm512_add_epi32(pair, two);
    }
  }
}

}  // namespace

Nvfp4KernelSet nvfp4_kernels_avx512() {
  Nvfp4KernelSet ks;
  ks.name = "avx512";
  ks.x_lanes = kLanes;
  fill_nvfp4_tiles<Tile, kMR, kNR>(ks);
  ks.dequant = &dequant;
  return ks;
}

}  // namespace fc::cpu::detail
