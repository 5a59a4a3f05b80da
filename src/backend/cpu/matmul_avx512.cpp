// AVX-512 matmul kernels (F + BW + VL + FMA). Every function touching AVX-512 carries a target
// attribute so the rest of the program is built for baseline x86-64; the driver only calls in
// here after __builtin_cpu_supports said yes. Everything is in an anonymous namespace so no
// AVX-512-compiled inline function can be merged with a baseline one at link time.
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_* helpers
// (GCC PR105593, fixed in 13); the warnings point into the header, so silence them there only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__  // a gcc-only warning group
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstdint>

#include "backend/cpu/avx512_common.h"
#include "backend/cpu/matmul_kernels.h"

#define FC_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))
#define FC_AVX512_INLINE \
  __attribute__((target("avx512f,avx512bw,avx512vl,fma"), always_inline)) inline

namespace fc::cpu::detail {
namespace {

// 4 activation rows × 4 weight rows: 16 zmm accumulators + 4 weight vectors + 1 activation
// vector = 21 of the 32 registers. Each 16-wide k step does 8 loads for 16 FMAs.
constexpr int kMR = 4, kNR = 4;
constexpr int kLanes = 16;

// Lanes [k, k+16) of a weight row, widened to fp32.
template <WKind W>
FC_AVX512_INLINE __m512 load_w(const void* row, int64_t k) {
  if constexpr (W == WKind::kF32) {
    return _mm512_loadu_ps(static_cast<const float*>(row) + k);
  } else {
    const __m256i h =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + k));
    if constexpr (W == WKind::kBF16) {
      // bf16 is the top half of an fp32: zero-extend to 32 bits and shift into place.
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
      return _mm512_cvtph_ps(h);
    }
  }
}

// Same for the lanes selected by m (others read as 0; masked-off memory is not touched).
template <WKind W>
FC_AVX512_INLINE __m512 load_w_masked(const void* row, int64_t k, __mmask16 m) {
  if constexpr (W == WKind::kF32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(row) + k);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(row) + k);
    if constexpr (W == WKind::kBF16) {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
      return _mm512_cvtph_ps(h);
    }
  }
}

template <WKind W, int MR, int NR>
struct Tile {
  FC_AVX512 static void run(const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t K,
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

    __m512 acc[MR][NR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
    }

    int64_t k = 0;
    for (; k + kLanes <= K; k += kLanes) {
      __m512 wv[NR];
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
        const __m512 xv = _mm512_loadu_ps(xr[i] + k);
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
      }
    }
    if (k < K) {  // 1..15 columns left: masked loads, the missing lanes contribute 0 * 0
      const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1u);
      __m512 wv[NR];
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) wv[j] = load_w_masked<W>(wr[j], k, m);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const __m512 xv = _mm512_maskz_loadu_ps(m, xr[i] + k);
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
      }
    }

    avx512::store_tile<MR, NR>(acc, y, ldy, add);
  }
};

template <WKind W>
FC_AVX512 void widen_rows(const void* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                          int64_t ldd) {
  const char* sb = static_cast<const char*>(src);
  for (int64_t r = 0; r < rows; ++r) {
    const void* row = sb + r * lds * wkind_bytes(W);
    float* d = dst + r * ldd;
    int64_t c = 0;
    for (; c + kLanes <= cols; c += kLanes) _mm512_storeu_ps(d + c, load_w<W>(row, c));
    if (c < cols) {
      const __mmask16 m = static_cast<__mmask16>((1u << (cols - c)) - 1u);
      _mm512_mask_storeu_ps(d + c, m, load_w_masked<W>(row, c, m));
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

KernelSet kernels_avx512() {
  KernelSet ks;
  ks.name = "avx512";
  fill_all_tiles<Tile, kMR, kNR>(ks);
  ks.widen = &widen;
  return ks;
}

}  // namespace fc::cpu::detail
