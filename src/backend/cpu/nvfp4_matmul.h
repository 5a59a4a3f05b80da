// NVFP4 (W4A16) linear layers on the CPU: y = x · Wᵀ with W an NVFP4 matrix [N, K] in checkpoint
// layout (packed E2M1 codes + FP8 E4M3 block scales + a global scale, quant/nvfp4.h). Activations
// and accumulation are fp32. The decode path decodes weights in registers (never to memory); the
// prefill path dequantizes small weight panels into a per-thread fp32 scratch and runs the dense
// fp32 register tiles of matmul. `nvfp4_matmul_ref` is the scalar loop both are tested against.
#pragma once

#include <cstdint>

#include "backend/cpu/matmul.h"
#include "core/thread_pool.h"
#include "quant/nvfp4.h"

namespace fc::cpu {

// y[t, n] (+)= Σ_k x[t, k] · W[n, k]  for t < T, n < w.rows, k < w.cols (w.cols % 16 == 0).
// x: [T, w.cols] fp32, row stride ldx; y: [T, w.rows] fp32, row stride ldy.
// Scale bytes 0x7F / 0xFF (E4M3 NaN) are not supported by the fast path (they decode as ±480).
void nvfp4_matmul(ThreadPool& pool, const float* x, int64_t T, int64_t ldx,
                  const quant::Nvfp4Matrix& w, float* y, int64_t ldy, bool accumulate = false);

// The same with a forced kernel family (MatmulIsa of matmul.h) and loop structure (kDirect:
// decode-style, weights decoded in registers; kBlocked: panels dequantized to scratch). Throws
// fc::Error if this CPU lacks the instruction set.
void nvfp4_matmul_with_isa(MatmulIsa isa, ThreadPool& pool, const float* x, int64_t T, int64_t ldx,
                           const quant::Nvfp4Matrix& w, float* y, int64_t ldy,
                           bool accumulate = false, MatmulPath path = MatmulPath::kAuto);

// The fastest kernel family that multiplies the fp32 activations as they are (every family but
// kAvx512Bf16, which splits them into bf16 hi + lo parts, within 2⁻¹⁷ relative, and kAvx2I16 /
// kAvx512Vnni, which hold them as 24-bit fixed point per 16-column block, within 2⁻²² of the
// block's largest |x|). W4A4 emulation uses it: its 4-bit activation rounding turns such
// differences into visible ones.
MatmulIsa nvfp4_fp32_isa();

// The most activation rows for which nvfp4_matmul_with_isa(isa, ...) with MatmulPath::kAuto takes
// the direct path (32; 5 with AMX tiles, whose blocked path is faster from there on).
int64_t nvfp4_direct_max_rows(MatmulIsa isa);

// The kernel family nvfp4_matmul picks on this CPU ("amx-bf16", "avx512-bf16", "avx512-vnni",
// "avx512", "avx2-i16", "avx2", "scalar"): the family of its blocked (prefill) path, or of the
// direct one where the blocked path is not on AMX tiles.
const char* nvfp4_matmul_isa();

// The direct (decode) kernel set nvfp4_matmul picks on this CPU: of the sets it supports, the
// fastest measured once per process on a decode-sized product ("avx512-vnni", "avx512-bf16",
// "avx512", "avx2-i16", "avx2", "scalar").
const char* nvfp4_direct_kernels();

// Scalar reference: each row dequantized with quant::dequantize_row, then an in-order fp32 dot.
void nvfp4_matmul_ref(const float* x, int64_t T, int64_t ldx, const quant::Nvfp4Matrix& w, float* y,
                      int64_t ldy, bool accumulate = false);

}  // namespace fc::cpu
