// Blackwell native NVFP4 GEMM through cuBLASLt's block-scaled FP4 matmul (spec weight-formats
// §4.1): y[T, N] (+)= alpha · dequant(x_fp4)[T, K] · dequant(W_fp4)[N, K]ᵀ with E4M3 scales per
// 16 elements in the swizzled 128×4 layout (plan.h) for both operands, fp32 output.
// Compile-checked against cuBLAS >= 12.8 headers; NOT tested on hardware yet.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace fc::cuda {

struct Fp4GemmArgs {
  const uint8_t* w_codes;   // [N, K/2] packed E2M1, row stride K/2 bytes
  const uint8_t* w_scales;  // swizzled [N, K/16] E4M3
  const uint8_t* x_codes;   // [T, K/2]
  const uint8_t* x_scales;  // swizzled [T, K/16]
  int64_t N, K, T;
  float alpha;  // weight global scale · activation input_scale
  float* y;
  int64_t ldy;
  bool accumulate;
  void* workspace;  // cuBLASLt workspace
  size_t workspace_bytes;
};

// False (with nothing launched) when this cuBLAS has no FP4 support or finds no algorithm for
// the shape on this GPU; the caller then uses the W4A16 kernel. Throws on other cuBLAS errors.
bool fp4_gemm(cublasLtHandle_t lt, cudaStream_t s, const Fp4GemmArgs& a);

}  // namespace fc::cuda
