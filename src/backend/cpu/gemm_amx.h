// Blocked (prefill) GEMM on Intel AMX-BF16 tiles, shared by dense BF16 matmul and NVFP4 matmul:
//   y[t, n] (+)= out_scale · Σ_k x[t, k] · W[n, k]
// for weights whose values are exact in bf16 (BF16 checkpoints; NVFP4's E2M1 code times its E4M3
// block scale, at most 6 significant bits, with the global scale as out_scale).
//
// Exactness: each fp32 activation is split into `parts` bf16 parts, x = p0 + p1 (+ p2) + r with
// p0 = bf16(x), p1 = bf16(x - p0), p2 = bf16(x - p0 - p1) (the differences are exact in fp32):
// two parts leave |r| <= 2⁻¹⁷·|x|, as the AVX512-BF16 NVFP4 decode kernels
// (nvfp4_matmul_avx512bf16.cpp) do, three |r| <= 2⁻²⁶·|x|, below fp32's own rounding of x, as
// close to the fp32 sum as the fp32 kernels (dense BF16 weights: two parts moved a tiny model's
// golden hidden states past their tolerance). Every bf16 × bf16 product is exact in fp32 and the
// sums are fp32 (TDPBF16PS; bf16 subnormals, below 1e-38, read as zero). One tile product per
// part and weight tile.
//
// Layout (tiles are 16 rows × 64 bytes, config palette 1):
//   A = activations, row-major bf16, one array per part [Tp][Kp] (Tp = T rounded up to 32, zero
//       rows past T; Kp = K rounded up to 32 plus 32, zero columns past K), one conversion per
//       call; an A tile is 16 tokens × 32 columns.
//   B = weights, VNNI pairs: per 16 weight rows and 32 columns a 1 KiB tile whose row p holds,
//       for each of the 16 weight rows, the bf16 pair (W[n, 2p], W[n, 2p+1]); made per
//       (panel, K block) by the caller's fill (row-major bf16) and a 16 × 16 dword transpose.
//   C = 16 tokens × 16 weight rows fp32, kept in a per-task accumulator between K blocks.
// Register blocking: C 2 × 2 (32 tokens × 32 weight rows), B 2, A reloaded (two token tiles per
// part): 2 + 2·parts tile loads per 4·parts TDPBF16PS.
#pragma once

#include <cstdint>
#include <functional>

#include "backend/cpu/gemm_packed.h"
#include "core/thread_pool.h"

namespace fc::cpu::detail {

// This CPU has AMX-TILE, AMX-BF16 and AVX512-BF16 (CPUID leaf 7) and Linux granted this process
// the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA). Asked once.
bool amx_bf16_usable();

// Writes weight rows [n0, n0 + rows) × columns [k0, k0 + kc) as bf16 bit patterns into dst
// (row stride ldd elements); the values must be exact in bf16 (see the top of this file).
using Bf16FillFn = std::function<void(int64_t n0, int64_t rows, int64_t k0, int64_t kc,
                                      uint16_t* dst, int64_t ldd)>;

// GemmProblem (gemm_packed.h: x [T, K], W [N, K], y [T, N], strides, accumulate) plus:
struct AmxGemmProblem : GemmProblem {
  float out_scale = 1.0f;  // multiplies Σ_k x·W (NVFP4's global scale)
  int parts = 3;           // bf16 parts per activation: 2 or 3 (see the top of this file)
};

// k_align: every K block but the last is a multiple of it and of 32 (16 for NVFP4's scale
// blocks); threads: how many of the pool's threads to use (>= 1). amx_bf16_usable() must hold.
void amx_gemm(ThreadPool& pool, const AmxGemmProblem& p, int64_t k_align, int64_t threads,
              const Bf16FillFn& fill);

// Fills for the two weight kinds: bf16 rows copied (W[n, k] at w + n·ld + k elements), and NVFP4
// codes (nibble pairs, row stride ld bytes) with E4M3 block scales (row stride sld bytes) decoded
// to e2m1 · e4m3 without the global scale (k0, kc multiples of 16).
void amx_fill_bf16(const uint16_t* w, int64_t ld, int64_t n0, int64_t rows, int64_t k0, int64_t kc,
                   uint16_t* dst, int64_t ldd);
void amx_fill_nvfp4(const uint8_t* codes, int64_t ld, const uint8_t* scales, int64_t sld,
                    int64_t n0, int64_t rows, int64_t k0, int64_t kc, uint16_t* dst, int64_t ldd);

}  // namespace fc::cpu::detail
