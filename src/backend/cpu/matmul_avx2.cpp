// AVX2 + FMA + F16C matmul kernels, for x86-64 machines without AVX-512. Same structure as
// matmul_avx512.cpp (see there); every SIMD function carries a target attribute and lives in an
// anonymous namespace.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "backend/cpu/matmul_kernels.h"

#define FC_AVX2 __attribute__((target("avx2,fma,f16c")))
#define FC_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline

namespace fc::cpu::detail {
namespace {

// 4 activation rows × 3 weight rows: 12 ymm accumulators + 3 weight vectors + 1 activation
// vector = all 16 registers, no spills (3 × 4 spills one accumulator with GCC 12).
constexpr int kMR = 4, kNR = 3;
constexpr int kLanes = 8;

// Lanes [k, k+8) of a weight row, widened to fp32.
template <WKind W>
FC_AVX2_INLINE __m256 load_w(const void* row, int64_t k) {
  if constexpr (W == WKind::kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(row) + k);
  } else {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + k));
    if constexpr (W == WKind::kBF16) {
      // bf16 is the top half of an fp32: zero-extend to 32 bits and shift into place.
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
      return _mm256_cvtph_ps(h);
    }
  }
}

// Lane j of the result = sum of the 8 lanes of aj.
FC_AVX2_INLINE __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

template <WKind W, int MR, int NR>
struct Tile {
  FC_AVX2 static void run(const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t K,
                          float* y, int64_t ldy, bool add) {
    constexpr int64_t es = wkind_bytes(W);
    const char* wb = static_cast<const char*>(w);
    const void* wr[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) wr[j] = wb + j * ldw * es;
    // Prefetch targets: the nr rows just below this tile, i.e. the next tile of a decode sweep.
    // Hardware prefetchers ramp up too slowly on short rows read as nr interleaved streams
    // (K = 1536 bf16: ~70% -> ~95% of read bandwidth). Prefetches never fault, so running past
    // the end of the matrix is harmless; the address is formed as an integer for that reason.
    uintptr_t pf[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) pf[j] = reinterpret_cast<uintptr_t>(wr[j]) + NR * ldw * es;
    const float* xr[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) xr[i] = x + i * ldx;

    __m256 acc[MR][NR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
    }

    int64_t k = 0;
    for (; k + kLanes <= K; k += kLanes) {
      __m256 wv[NR];
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) wv[j] = load_w<W>(wr[j], k);
      if ((k * es) % 64 == 0) {  // one prefetch per 64-byte line of each row
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) {
          _mm_prefetch(reinterpret_cast<const char*>(pf[j] + k * es), _MM_HINT_T0);
        }
      }
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const __m256 xv = _mm256_loadu_ps(xr[i] + k);
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
      }
    }
    if (k < K) {
      // 1..7 columns left: copy them into zero-padded buffers (AVX2 has no masked 16-bit load)
      // and run one more full-width step; the padding contributes 0 * 0.
      const int64_t rem = K - k;
      alignas(32) unsigned char wt[NR][kLanes * es];
      alignas(32) float xt[MR][kLanes];
      std::memset(wt, 0, sizeof(wt));
      std::memset(xt, 0, sizeof(xt));
      for (int j = 0; j < NR; ++j) {
        std::memcpy(wt[j], static_cast<const char*>(wr[j]) + k * es, static_cast<size_t>(rem * es));
      }
      for (int i = 0; i < MR; ++i) {
        std::memcpy(xt[i], xr[i] + k, static_cast<size_t>(rem) * sizeof(float));
      }
      __m256 wv[NR];
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) wv[j] = load_w<W>(wt[j], 0);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const __m256 xv = _mm256_load_ps(xt[i]);
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
      }
    }

#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      __m256 f[4];
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) f[j] = acc[i][j];
      for (int j = NR; j < 4; ++j) f[j] = _mm256_setzero_ps();
      __m128 s = hsum4(f[0], f[1], f[2], f[3]);
      float* yi = y + i * ldy;
      if constexpr (NR == 4) {
        if (add) s = _mm_add_ps(s, _mm_loadu_ps(yi));
        _mm_storeu_ps(yi, s);
      } else {
        alignas(16) float sv[4];
        _mm_store_ps(sv, s);
        for (int j = 0; j < NR; ++j) yi[j] = add ? yi[j] + sv[j] : sv[j];
      }
    }
  }
};

template <WKind W>
FC_AVX2 void widen_rows(const void* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                        int64_t ldd) {
  constexpr int64_t es = wkind_bytes(W);
  const char* sb = static_cast<const char*>(src);
  for (int64_t r = 0; r < rows; ++r) {
    const char* row = sb + r * lds * es;
    float* d = dst + r * ldd;
    int64_t c = 0;
    for (; c + kLanes <= cols; c += kLanes) _mm256_storeu_ps(d + c, load_w<W>(row, c));
    if (c < cols) {
      alignas(32) unsigned char tmp[kLanes * es] = {};
      alignas(32) float out[kLanes];
      std::memcpy(tmp, row + c * es, static_cast<size_t>((cols - c) * es));
      _mm256_store_ps(out, load_w<W>(tmp, 0));
      std::memcpy(d + c, out, static_cast<size_t>(cols - c) * sizeof(float));
    }
  }
}

void widen(const void* src, WKind kind, int64_t lds, int64_t rows, int64_t cols, float* dst,
           int64_t ldd) {
  switch (kind) {
    case WKind::kF32:
      return widen_rows<WKind::kF32>(src, lds, rows, cols, dst, ldd);
    case WKind::kBF16:
      return widen_rows<WKind::kBF16>(src, lds, rows, cols, dst, ldd);
    case WKind::kF16:
      return widen_rows<WKind::kF16>(src, lds, rows, cols, dst, ldd);
  }
}

}  // namespace

KernelSet kernels_avx2() {
  KernelSet ks;
  ks.name = "avx2";
  fill_all_tiles<Tile, kMR, kNR>(ks);
  ks.widen = &widen;
  set_gemm_avx2(ks);  // the blocked path's 6 × 16 packed-panel tile (gemm_avx2.cpp)
  return ks;
}

}  // namespace fc::cpu::detail
