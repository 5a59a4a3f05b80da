// AVX2 + FMA packed-panel GEMM for the blocked (prefill) path: a 6 × 16 register tile over
// weight micro-panels packed k-major (kc rows of 16 weight rows' values, gemm_packed.h).
//
// Per k the tile loads 16 packed weights (2 ymm), broadcasts 6 activations and issues 12 FMAs
// into 12 accumulators (2 + 1 + 12 = 15 of the 16 ymm registers): 8 loads per 12 FMAs, so the
// two FMA pipes, not the loads, bound it. The dot-product tiles of matmul_avx2.cpp (4 × 3, a
// horizontal sum at the end) load 7 vectors per 12 FMAs and re-read their weight rows from L2
// for every activation tile; here the 16 KiB micro-panel (kc = 256) stays in L1 while the
// activation rows stream past it. Each output is summed in k order in one lane (no horizontal
// sums), as the reference's in-order dot.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "backend/cpu/matmul_kernels.h"

#define FC_AVX2 __attribute__((target("avx2,fma,f16c")))
#define FC_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline

namespace fc::cpu::detail {
namespace {

constexpr int kMR = 6, kNR = 16;

template <int MR>
FC_AVX2 void gemm_tile(const float* a, int64_t lda, const float* bp, int64_t ldb, int64_t kc,
                       float* c, int64_t ldc, int nr, bool add) {
  __m256 lo[MR], hi[MR];  // outputs j < 8 and 8 <= j < 16 of activation row i
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) lo[i] = hi[i] = _mm256_setzero_ps();
  const float* ar[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) ar[i] = a + i * lda;
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(bp + k * ldb), b1 = _mm256_loadu_ps(bp + k * ldb + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_broadcast_ss(ar[i] + k);
      lo[i] = _mm256_fmadd_ps(av, b0, lo[i]);
      hi[i] = _mm256_fmadd_ps(av, b1, hi[i]);
    }
  }
  if (nr == kNR) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      if (add) {
        lo[i] = _mm256_add_ps(lo[i], _mm256_loadu_ps(ci));
        hi[i] = _mm256_add_ps(hi[i], _mm256_loadu_ps(ci + 8));
      }
      _mm256_storeu_ps(ci, lo[i]);
      _mm256_storeu_ps(ci + 8, hi[i]);
    }
    return;
  }
  // A partial micro-panel (the last weight rows of a matrix): only columns j < nr are written.
  // (Unrolled like every loop over i: an indexed accumulator would live in memory, and GCC then
  // stores all 12 of them on every k step.)
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    alignas(32) float s[kNR];
    _mm256_store_ps(s, lo[i]);
    _mm256_store_ps(s + 8, hi[i]);
    float* ci = c + i * ldc;
    for (int j = 0; j < nr; ++j) ci[j] = add ? ci[j] + s[j] : s[j];
  }
}

void gemm(const float* a, int64_t lda, const float* bp, int64_t ldb, int64_t kc, float* c,
          int64_t ldc, int mr, int nr, bool add) {
  switch (mr) {
    case 1:
      return gemm_tile<1>(a, lda, bp, ldb, kc, c, ldc, nr, add);
    case 2:
      return gemm_tile<2>(a, lda, bp, ldb, kc, c, ldc, nr, add);
    case 3:
      return gemm_tile<3>(a, lda, bp, ldb, kc, c, ldc, nr, add);
    case 4:
      return gemm_tile<4>(a, lda, bp, ldb, kc, c, ldc, nr, add);
    case 5:
      return gemm_tile<5>(a, lda, bp, ldb, kc, c, ldc, nr, add);
    default:
      return gemm_tile<6>(a, lda, bp, ldb, kc, c, ldc, nr, add);
  }
}

// 8 rows × 8 columns of src (rows r[0..7], from column k) transposed into 8 packed k rows:
// dst[j*kNR + i] = r[i][k + j].
FC_AVX2_INLINE void transpose8(const float* const* r, int64_t k, float* dst) {
  const __m256 t0 = _mm256_unpacklo_ps(_mm256_loadu_ps(r[0] + k), _mm256_loadu_ps(r[1] + k));
  const __m256 t1 = _mm256_unpackhi_ps(_mm256_loadu_ps(r[0] + k), _mm256_loadu_ps(r[1] + k));
  const __m256 t2 = _mm256_unpacklo_ps(_mm256_loadu_ps(r[2] + k), _mm256_loadu_ps(r[3] + k));
  const __m256 t3 = _mm256_unpackhi_ps(_mm256_loadu_ps(r[2] + k), _mm256_loadu_ps(r[3] + k));
  const __m256 t4 = _mm256_unpacklo_ps(_mm256_loadu_ps(r[4] + k), _mm256_loadu_ps(r[5] + k));
  const __m256 t5 = _mm256_unpackhi_ps(_mm256_loadu_ps(r[4] + k), _mm256_loadu_ps(r[5] + k));
  const __m256 t6 = _mm256_unpacklo_ps(_mm256_loadu_ps(r[6] + k), _mm256_loadu_ps(r[7] + k));
  const __m256 t7 = _mm256_unpackhi_ps(_mm256_loadu_ps(r[6] + k), _mm256_loadu_ps(r[7] + k));
  // u*: 4-element columns of rows 0-3 (u0..u3) and 4-7 (u4..u7), per 128-bit half.
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_store_ps(dst + 0 * kNR, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_store_ps(dst + 1 * kNR, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_store_ps(dst + 2 * kNR, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_store_ps(dst + 3 * kNR, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_store_ps(dst + 4 * kNR, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_store_ps(dst + 5 * kNR, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_store_ps(dst + 6 * kNR, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_store_ps(dst + 7 * kNR, _mm256_permute2f128_ps(u3, u7, 0x31));
}

FC_AVX2 void pack(const float* src, int64_t lds, int64_t rows, int64_t kc, float* dst) {
  for (int64_t p = 0; p * kNR < rows; ++p) {
    float* d = dst + p * kc * kNR;
    for (int h = 0; h < 2; ++h) {  // lanes 8h .. 8h+7 of every packed k row
      const int64_t r0 = p * kNR + 8 * h;
      const float* r[8];
      // Rows past the end point at the last row (never read: the loop below writes zeros).
      for (int i = 0; i < 8; ++i) r[i] = src + std::min(r0 + i, rows - 1) * lds;
      int64_t k = 0;
      if (r0 + 8 <= rows) {
        for (; k + 8 <= kc; k += 8) transpose8(r, k, d + k * kNR + 8 * h);
      }
      for (; k < kc; ++k) {  // the last columns, or rows past the end (zeros)
        for (int i = 0; i < 8; ++i) d[k * kNR + 8 * h + i] = r0 + i < rows ? r[i][k] : 0.0f;
      }
    }
  }
}

}  // namespace

void set_gemm_avx2(KernelSet& ks) {
  ks.gemm_mr = kMR;
  ks.gemm_nr = kNR;
  ks.gemm = &gemm;
  ks.pack = &pack;
}

}  // namespace fc::cpu::detail
