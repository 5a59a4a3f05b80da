// AVX2 + FMA prefill GEMM on packed weight panels: y[T, N] (+)= x[T, K] · Wᵀ, W [N, K] any
// format a packer can widen (dense BF16/F16/F32, NVFP4 dequantized exactly).
//
// Why not the dot-product register tiles of matmul_avx2.cpp: their 4 × 3 tile loads 7 vectors
// (4 of x, 3 of W, 224 bytes) per 12 FMAs, so with the widened W panel in L2 the loop is bound by
// L2 → L1 traffic at ~40% of the FMA peak. Here the micro-kernel is the outer-product form: per
// k, 16 weights (two vectors, from a [kc][16] panel that stays in L1) times 6 activations
// broadcast from x: 12 FMAs per 64 + 24 bytes read, and the accumulators (12 of the 16 registers)
// are y[t .. t+6, n .. n+16] itself, stored once per K block.
//
// Blocking: panels of 16 weight rows × kKc columns (16 KiB of fp32) are packed once and swept by
// every 6-row activation tile; threads take contiguous ranges of 16-row panels (or, with fewer
// panels than threads, of activation tiles). Products and sums are fp32, in k order within a K
// block, K blocks in order: the result differs from a plain dot only by summation order.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

#include "backend/cpu/gemm_avx2.h"

#define FC_AVX2 __attribute__((target("avx2,fma,f16c")))
#define FC_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline

namespace fc::cpu::detail {
namespace {

constexpr int kNb = 16;       // weight rows per panel (two 8-lane vectors)
constexpr int kMr = 6;        // activation rows per micro-kernel call
constexpr int64_t kKc = 256;  // K block: a 16 × 256 fp32 panel is 16 KiB (L1)

// acc[i][h] = y[t + i, n + 8h .. n + 8h + 8) over one K block of kc columns.
template <int MR>
FC_AVX2 void micro_kernel(const float* x, int64_t ldx, const float* panel, int64_t kc, float* y,
                          int64_t ldy, int cols, bool add) {
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const float* xr[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) xr[i] = x + i * ldx;
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(panel + kNb * k), b1 = _mm256_load_ps(panel + kNb * k + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(xr[i] + k);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
    }
  }
  if (cols == kNb) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      float* yi = y + i * ldy;
      __m256 s0 = acc[i][0], s1 = acc[i][1];
      if (add) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(yi));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(yi + 8));
      }
      _mm256_storeu_ps(yi, s0);
      _mm256_storeu_ps(yi + 8, s1);
    }
    return;
  }
  for (int i = 0; i < MR; ++i) {  // the last, partial panel of a matrix
    alignas(32) float tmp[kNb];
    _mm256_store_ps(tmp, acc[i][0]);
    _mm256_store_ps(tmp + 8, acc[i][1]);
    float* yi = y + i * ldy;
    for (int c = 0; c < cols; ++c) yi[c] = add ? yi[c] + tmp[c] : tmp[c];
  }
}

using MicroFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int, bool);
constexpr MicroFn kMicro[kMr] = {&micro_kernel<1>, &micro_kernel<2>, &micro_kernel<3>,
                                 &micro_kernel<4>, &micro_kernel<5>, &micro_kernel<6>};

// 8 consecutive weights of a row as fp32.
template <WKind W>
FC_AVX2_INLINE __m256 load8(const void* row, int64_t k) {
  if constexpr (W == WKind::kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(row) + k);
  } else {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + k));
    if constexpr (W == WKind::kBF16) {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
      return _mm256_cvtph_ps(h);
    }
  }
}

// In-register transpose of 8 vectors (r[i] lane j -> r[j] lane i).
FC_AVX2_INLINE void transpose8(__m256 (&r)[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// dst[c * 16 + r] = W[r, c] for r < rows, c < kc (rows of src lds elements apart); rows past
// `rows` are zero.
template <WKind W>
FC_AVX2 void pack_rows(const void* src, int64_t lds, int64_t rows, int64_t kc, float* dst) {
  constexpr int64_t es = wkind_bytes(W);
  const char* base = static_cast<const char*>(src);
  const void* row[kNb];
  for (int r = 0; r < kNb; ++r) row[r] = r < rows ? base + r * lds * es : nullptr;
  int64_t c = 0;
  for (; c + 8 <= kc; c += 8) {
    for (int h = 0; h < 2; ++h) {
      __m256 v[8];
      for (int r = 0; r < 8; ++r) {
        const void* p = row[8 * h + r];
        v[r] = p ? load8<W>(p, c) : _mm256_setzero_ps();
      }
      transpose8(v);
      for (int j = 0; j < 8; ++j) _mm256_store_ps(dst + (c + j) * kNb + 8 * h, v[j]);
    }
  }
  for (; c < kc; ++c) {  // kc % 8 columns at the end of a row
    for (int r = 0; r < kNb; ++r) {
      float f = 0.0f;
      if (row[r]) {
        if constexpr (W == WKind::kF32) {
          std::memcpy(&f, static_cast<const char*>(row[r]) + c * 4, 4);
        } else {
          alignas(16) uint16_t tmp[8] = {};
          std::memcpy(tmp, static_cast<const char*>(row[r]) + c * 2, 2);
          alignas(32) float out[8];
          _mm256_store_ps(out, load8<W>(tmp, 0));
          f = out[0];
        }
      }
      dst[c * kNb + r] = f;
    }
  }
}

}  // namespace

void pack_panel_avx2(const void* src, WKind kind, int64_t lds, int64_t rows, int64_t kc,
                     float* dst) {
  switch (kind) {
    case WKind::kF32:
      return pack_rows<WKind::kF32>(src, lds, rows, kc, dst);
    case WKind::kBF16:
      return pack_rows<WKind::kBF16>(src, lds, rows, kc, dst);
    case WKind::kF16:
      return pack_rows<WKind::kF16>(src, lds, rows, kc, dst);
  }
}

void packed_gemm_avx2(ThreadPool& pool, const float* x, int64_t T, int64_t ldx, int64_t N,
                      int64_t K, const PanelPacker& pack, float* y, int64_t ldy, bool accumulate) {
  const int64_t n_panels = (N + kNb - 1) / kNb;
  const int64_t t_tiles = (T + kMr - 1) / kMr;
  const int64_t threads = std::min<int64_t>(pool.size(), n_panels * t_tiles);
  // Work items: (panel, activation block). Activations are split only when there are fewer
  // panels than threads.
  const int64_t t_blocks =
      n_panels >= threads ? 1 : std::min(t_tiles, (threads + n_panels - 1) / n_panels);
  const int64_t tiles_per_block = (t_tiles + t_blocks - 1) / t_blocks;
  const int64_t items = n_panels * t_blocks;
  const int64_t grain = (items + threads - 1) / threads;
  pool.parallel_for(items, grain, [&](int64_t b, int64_t e, int) {
    // Per-call, per-thread panel (fp32, 32-byte aligned) and packer scratch.
    std::unique_ptr<float[]> buf(new float[static_cast<size_t>(kNb * kKc + 8)]);
    const auto addr = reinterpret_cast<uintptr_t>(buf.get());
    float* panel = buf.get() + ((32 - addr % 32) % 32) / sizeof(float);
    std::unique_ptr<float[]> scratch(new float[static_cast<size_t>(pack.scratch_floats(kKc))]);
    for (int64_t it = b; it < e; ++it) {
      const int64_t p = it / t_blocks, tb = it % t_blocks;
      const int64_t n0 = p * kNb, rows = std::min<int64_t>(kNb, N - n0);
      const int64_t t0 = tb * tiles_per_block * kMr, t1 = std::min(T, t0 + tiles_per_block * kMr);
      for (int64_t k0 = 0; k0 < K; k0 += kKc) {
        const int64_t kc = std::min(kKc, K - k0);
        pack.pack(n0, rows, k0, kc, panel, scratch.get());
        const bool add = accumulate || k0 > 0;
        for (int64_t t = t0; t < t1; t += kMr) {
          const int mr = static_cast<int>(std::min<int64_t>(kMr, t1 - t));
          kMicro[mr - 1](x + t * ldx + k0, ldx, panel, kc, y + t * ldy + n0, ldy,
                         static_cast<int>(rows), add);
        }
      }
    }
  });
}

}  // namespace fc::cpu::detail
