// Dense linear layers on the CPU: y = x · Wᵀ with W in PyTorch Linear layout [N, K].
// Activations are fp32; weights are F32, BF16 or F16 and are widened to fp32 in registers (never
// converted in memory), accumulation is fp32. `matmul` is the fast path (SIMD, threads);
// `matmul_ref` is the obvious scalar loop it is tested against.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace fc::cpu {

// A row-major weight matrix W[rows=N, cols=K] whose row r starts at data + r*ld elements.
struct MatView {
  const void* data = nullptr;
  DType dtype = DType::kF32;  // kF32, kBF16 or kF16
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t ld = 0;  // row stride in elements, >= cols
};

// y[t, n] = sum_k x[t, k] * W[n, k]   for t < T, n < W.rows, k < W.cols.
// x: [T, W.cols] fp32 with row stride ldx; y: [T, W.rows] fp32 with row stride ldy.
// If accumulate, adds into y instead of overwriting it.
void matmul(ThreadPool& pool, const float* x, int64_t T, int64_t ldx, const MatView& w, float* y,
            int64_t ldy, bool accumulate = false);

void matmul_ref(const float* x, int64_t T, int64_t ldx, const MatView& w, float* y, int64_t ldy,
                bool accumulate = false);

// The instruction set the fast path picked at run time ("amx-bf16", "avx512", "avx2" or
// "scalar").
const char* matmul_isa();

// Kernel families matmul can run; kAuto is the best one this CPU supports (what matmul uses).
// kAvx512Bf16 (AVX-512 + AVX512_BF16) differs from kAvx512 only in the NVFP4 decode kernels
// (nvfp4_matmul.h); dense matmul runs the kAvx512 kernels for it. Likewise kAvx2I16 (AVX2 + FMA
// + F16C, NVFP4 decode in integers) runs the kAvx2 dense kernels. kAmx is kAvx512Bf16 with the
// blocked (prefill) path of BF16 and NVFP4 weights on AMX-BF16 tiles (gemm_amx.h; activations
// split into three bf16 parts, as close to fp32 as the fp32 kernels); it needs the CPU's AMX-TILE /
// AMX-BF16 and the kernel's permission for the tile state, asked for once per process.
// kAvx512Vnni (AVX-512 + AVX512_VNNI) is kAvx512 with the NVFP4 decode kernels in integers
// (vpdpbusd, the numerics of kAvx2I16).
enum class MatmulIsa { kAuto, kAmx, kAvx512Bf16, kAvx512Vnni, kAvx512, kAvx2I16, kAvx2, kScalar };

bool matmul_isa_supported(MatmulIsa isa);

// Loop structure: kDirect streams W in place (decode-sized T), kBlocked widens W panels into a
// scratch buffer and reuses them over many activation rows (prefill); kAuto picks by shape.
enum class MatmulPath { kAuto, kDirect, kBlocked };

// matmul with a forced kernel family and loop structure, so tests and benchmarks can cover every
// code path on one machine. Throws fc::Error if this CPU lacks the instruction set.
void matmul_with_isa(MatmulIsa isa, ThreadPool& pool, const float* x, int64_t T, int64_t ldx,
                     const MatView& w, float* y, int64_t ldy, bool accumulate = false,
                     MatmulPath path = MatmulPath::kAuto);

}  // namespace fc::cpu
