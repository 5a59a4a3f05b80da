// Streaming GEMV kernels for decode-sized T (the weight read once per token tile dominates) and
// the NVFP4 -> 16-bit dequantization that feeds cuBLAS for prefill-sized T.
//
// The GEMVs (v2 of kernels_linear.cu's SIMT kernels): a warp owns one output column n and walks
// the weight row in 16-byte loads (lane l takes chunks l, l + 32, ...; two chunks in flight per
// lane), so a warp moves 512 contiguous bytes per load instruction. Activations are read as
// float4 from L1/L2 (they are small and shared by every warp). fp32 products and sums: the same
// function as the SIMT kernels up to summation order.
//   NVFP4: a 16-byte chunk = 32 elements = two 16-element blocks, two E4M3 scale bytes.
//   BF16/F16: a 16-byte chunk = 8 elements.
#include <cuda_bf16.h>

#include "backend/cuda/device_math.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/plan.h"

namespace fc::cuda {
namespace {

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Streaming read-only 16-byte load (no L1 allocation: each weight byte is read once).
__device__ __forceinline__ uint4 ld_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// acc[r] += Σ_j x[r][j] · w[j] over 8 consecutive elements (x 16-byte aligned).
__device__ __forceinline__ float dot8(const float* x, const float* w, float acc) {
  const float4 a = *reinterpret_cast<const float4*>(x);
  const float4 b = *reinterpret_cast<const float4*>(x + 4);
  acc = fmaf(a.x, w[0], acc);
  acc = fmaf(a.y, w[1], acc);
  acc = fmaf(a.z, w[2], acc);
  acc = fmaf(a.w, w[3], acc);
  acc = fmaf(b.x, w[4], acc);
  acc = fmaf(b.y, w[5], acc);
  acc = fmaf(b.z, w[6], acc);
  acc = fmaf(b.w, w[7], acc);
  return acc;
}

// The 8 weights of one 32-bit code word (elements 2j low nibble, 2j+1 high): e2m1 · scale.
__device__ __forceinline__ void decode8(uint32_t word, float scale, float* w) {
#pragma unroll
  for (int j = 0; j < 8; ++j) w[j] = e2m1_f32(word >> (4 * j)) * scale;
}

__device__ __forceinline__ void store_out(float* y, int64_t ldy, int64_t t0, int nt, int64_t n,
                                          const float* a, bool accumulate, int lane) {
#pragma unroll
  for (int r = 0; r < kLinTokens; ++r) {
    const float v = warp_sum(a[r]);
    if (lane == 0 && r < nt) {
      float* o = y + (t0 + r) * ldy + n;
      *o = accumulate ? *o + v : v;
    }
  }
}

// NVFP4 W4A16 GEMV. Requires K % 32 == 0, 16-byte aligned code rows (ld % 16 == 0), 2-byte
// aligned scale rows, 16-byte aligned activation rows (ldx % 4 == 0).
__global__ void __launch_bounds__(kLinWarps * 32)
    gemv_nvfp4_kernel(const float* __restrict__ x, int64_t T, int64_t ldx,
                      const uint8_t* __restrict__ codes, int64_t ld,
                      const uint8_t* __restrict__ scales, int64_t sld, float gscale, int64_t N,
                      int64_t K, float* y, int64_t ldy, bool accumulate) {
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t{blockIdx.x} * kLinWarps + (threadIdx.x >> 5);
  if (n >= N) return;
  const int64_t t0 = int64_t{blockIdx.y} * kLinTokens;
  const int nt = static_cast<int>(T - t0 < kLinTokens ? T - t0 : kLinTokens);
  float a[kLinTokens];
#pragma unroll
  for (int r = 0; r < kLinTokens; ++r) a[r] = 0.0f;
  const uint8_t* crow = codes + n * ld;
  const uint16_t* srow = reinterpret_cast<const uint16_t*>(scales + n * sld);
  const int64_t chunks = K / 32;
#pragma unroll 2
  for (int64_t c = lane; c < chunks; c += 32) {
    const uint4 v = ld_stream(crow + c * 16);
    const uint16_t s2 = __ldg(srow + c);
    const float s0 = e4m3_f32(static_cast<uint8_t>(s2 & 0xff)) * gscale;
    const float s1 = e4m3_f32(static_cast<uint8_t>(s2 >> 8)) * gscale;
    float w[32];
    decode8(v.x, s0, w);
    decode8(v.y, s0, w + 8);
    decode8(v.z, s1, w + 16);
    decode8(v.w, s1, w + 24);
#pragma unroll
    for (int r = 0; r < kLinTokens; ++r) {
      if (r >= nt) continue;
      const float* xr = x + (t0 + r) * ldx + c * 32;
      float s = a[r];
      s = dot8(xr, w, s);
      s = dot8(xr + 8, w + 8, s);
      s = dot8(xr + 16, w + 16, s);
      s = dot8(xr + 24, w + 24, s);
      a[r] = s;
    }
  }
  store_out(y, ldy, t0, nt, n, a, accumulate, lane);
}

// BF16 / F16 GEMV. Requires K % 8 == 0, ldw % 8 == 0, 16-byte aligned rows of w and x.
template <bool kBF16>
__global__ void __launch_bounds__(kLinWarps * 32)
    gemv_dense16_kernel(const float* __restrict__ x, int64_t T, int64_t ldx,
                        const uint16_t* __restrict__ w, int64_t N, int64_t K, int64_t ldw, float* y,
                        int64_t ldy, bool accumulate) {
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t{blockIdx.x} * kLinWarps + (threadIdx.x >> 5);
  if (n >= N) return;
  const int64_t t0 = int64_t{blockIdx.y} * kLinTokens;
  const int nt = static_cast<int>(T - t0 < kLinTokens ? T - t0 : kLinTokens);
  float a[kLinTokens];
#pragma unroll
  for (int r = 0; r < kLinTokens; ++r) a[r] = 0.0f;
  const uint16_t* wrow = w + n * ldw;
  const int64_t chunks = K / 8;
#pragma unroll 2
  for (int64_t c = lane; c < chunks; c += 32) {
    const uint4 v = ld_stream(wrow + c * 8);
    float wv[8];
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint16_t lo = static_cast<uint16_t>(words[j] & 0xffffu);
      const uint16_t hi = static_cast<uint16_t>(words[j] >> 16);
      wv[2 * j] = kBF16 ? bf16_f32(lo) : f16_f32(lo);
      wv[2 * j + 1] = kBF16 ? bf16_f32(hi) : f16_f32(hi);
    }
#pragma unroll
    for (int r = 0; r < kLinTokens; ++r) {
      if (r >= nt) continue;
      a[r] = dot8(x + (t0 + r) * ldx + c * 8, wv, a[r]);
    }
  }
  store_out(y, ldy, t0, nt, n, a, accumulate, lane);
}

// out[n, k] = e2m1(code[n, k]) · e4m3(scale[n, k/16]) as BF16 (exact: a 2-bit times a 4-bit
// significand fits bf16's 8 bits, and the range 2^-10 .. 2688 is normal in bf16); the per-tensor
// scale is left to the caller (cuBLAS alpha). One thread per code byte (two outputs).
__global__ void nvfp4_dequant_bf16_kernel(const uint8_t* __restrict__ codes, int64_t ld,
                                          const uint8_t* __restrict__ scales, int64_t sld,
                                          int64_t N, int64_t K, uint32_t* __restrict__ out) {
  const int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;  // byte index in [N, K/2]
  const int64_t half = K / 2;
  if (i >= N * half) return;
  const int64_t n = i / half, j = i % half;
  const uint8_t c = codes[n * ld + j];
  const float s = e4m3_f32(scales[n * sld + (2 * j) / 16]);
  const uint16_t lo = f32_bf16(e2m1_f32(c & 0xf) * s);
  const uint16_t hi = f32_bf16(e2m1_f32(c >> 4) * s);
  out[n * half + j] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
}

bool aligned(const void* p, size_t a) {
  return reinterpret_cast<uintptr_t>(p) % a == 0;
}

}  // namespace

bool gemv_nvfp4_ok(const float* x, int64_t ldx, const uint8_t* codes, int64_t ld,
                   const uint8_t* scales, int64_t sld, int64_t K) {
  return K % 32 == 0 && ld % 16 == 0 && sld % 2 == 0 && ldx % 4 == 0 && aligned(codes, 16) &&
         aligned(scales, 2) && aligned(x, 16);
}

void launch_gemv_nvfp4(const float* x, int64_t T, int64_t ldx, const uint8_t* codes, int64_t ld,
                       const uint8_t* scales, int64_t scale_ld, float gscale, int64_t N, int64_t K,
                       float* y, int64_t ldy, bool accumulate, cudaStream_t s) {
  if (T <= 0 || N <= 0) return;
  const Grid2 g = linear_grid(T, N);
  gemv_nvfp4_kernel<<<dim3(static_cast<unsigned>(g.x), static_cast<unsigned>(g.y)), kLinWarps * 32,
                      0, s>>>(x, T, ldx, codes, ld, scales, scale_ld, gscale, N, K, y, ldy,
                              accumulate);
}

bool gemv_dense16_ok(const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t K) {
  return K % 8 == 0 && ldw % 8 == 0 && ldx % 4 == 0 && aligned(w, 16) && aligned(x, 16);
}

void launch_gemv_dense16(const float* x, int64_t T, int64_t ldx, const void* w, WDType wdt,
                         int64_t N, int64_t K, int64_t ldw, float* y, int64_t ldy, bool accumulate,
                         cudaStream_t s) {
  if (T <= 0 || N <= 0) return;
  const Grid2 g = linear_grid(T, N);
  const dim3 grid(static_cast<unsigned>(g.x), static_cast<unsigned>(g.y));
  const uint16_t* wp = static_cast<const uint16_t*>(w);
  if (wdt == WDType::kBF16)
    gemv_dense16_kernel<true>
        <<<grid, kLinWarps * 32, 0, s>>>(x, T, ldx, wp, N, K, ldw, y, ldy, accumulate);
  else
    gemv_dense16_kernel<false>
        <<<grid, kLinWarps * 32, 0, s>>>(x, T, ldx, wp, N, K, ldw, y, ldy, accumulate);
}

void launch_nvfp4_dequant_bf16(const uint8_t* codes, int64_t ld, const uint8_t* scales,
                               int64_t scale_ld, int64_t N, int64_t K, void* out, cudaStream_t s) {
  const int64_t n = N * (K / 2);
  if (n <= 0) return;
  const unsigned blocks = static_cast<unsigned>((n + 255) / 256);
  nvfp4_dequant_bf16_kernel<<<blocks, 256, 0, s>>>(codes, ld, scales, scale_ld, N, K,
                                                   static_cast<uint32_t*>(out));
}

}  // namespace fc::cuda
