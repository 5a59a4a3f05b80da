// Opt-in int8 NVFP4 prefill (CpuOptions::prefill_int8, `--cpu-prefill-int8`): NOT exact.
//
// The activations are quantized per row and per 16-column block (the NVFP4 scale block) to int8:
//   xs[t, b] = max_{k in b} |x[t, k]| / 127,  q[t, k] = round_half_even(x[t, k] · (127 / max))
// (q = 0, xs = 0 for an all-zero block), so each activation is off by at most xs/2. The E2M1
// codes are multiplied as the integers 2·e2m1 ∈ [-12, 12] (exact), so each block's dot product
// is an exact integer, which is scaled once per block in fp32:
//   y[t, n] (+)= Σ_b float(Σ_{k in b} q[t, k] · 2e2m1[n, k]) · (e4m3(scale[n, b]) · gs · xs[t, b])
// (the factor 2 of 2·e2m1 is folded into the activation scale: xs/2 per unit). This is the
// scheme of llama.cpp's Q4 × Q8 dot products (int8 activations, vpmaddubsw) with NVFP4's blocks.
// Fast path: AVX2 (vpmaddubsw on the codes, nvfp4_prefill_i8_avx2.cpp); elsewhere the scalar
// reference is used.
#pragma once

#include <cstdint>

#include "backend/cpu/matmul.h"
#include "core/thread_pool.h"
#include "quant/nvfp4.h"

namespace fc::cpu {

// y[t, n] (+)= the quantized product above, for t < T, n < w.rows (w.cols % 16 == 0).
// x: [T, w.cols] fp32, row stride ldx; y: [T, w.rows], row stride ldy.
// Up to 32 rows (decode) the weights are decoded in registers from the checkpoint layout (direct
// tiles, AVX2 only), above that (prefill) they are packed into int8 panels first; `path` forces
// one (kDirect without AVX2: the packed path), for tests and benchmarks.
void nvfp4_matmul_i8(ThreadPool& pool, const float* x, int64_t T, int64_t ldx,
                     const quant::Nvfp4Matrix& w, float* y, int64_t ldy, bool accumulate = false,
                     MatmulPath path = MatmulPath::kAuto);

// Whether nvfp4_matmul_i8 has its SIMD kernels on this CPU (AVX2 + FMA + F16C).
bool nvfp4_i8_fast();

// Scalar reference of the same arithmetic: the quantization above, exact integer block sums,
// then acc = fma(float(block sum), e4m3 · gs · xs, acc) over the blocks in order.
void nvfp4_matmul_i8_ref(const float* x, int64_t T, int64_t ldx, const quant::Nvfp4Matrix& w,
                         float* y, int64_t ldy, bool accumulate = false);

}  // namespace fc::cpu
