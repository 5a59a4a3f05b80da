// Element-wise, normalisation, embedding, KV-write and activation-preparation kernels. Each is
// memory-bound: one pass over its operands, grid-stride loops with 64-bit indices.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/kernel_common.cuh"

namespace fc::cuda {
namespace {

constexpr int kThreads = kElemThreads;

// ---- RMSNorm: one block per row; sum of squares in double like the CPU reference. ----
__global__ void rmsnorm_kernel(const float* x, int64_t rows, int64_t n, int64_t ldx, const void* w,
                               WDType wdt, float eps, float* y, int64_t ldy) {
  const int64_t r = blockIdx.x;
  const float* xr = x + r * ldx;
  double ss = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += static_cast<double>(xr[i]) * xr[i];
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  __shared__ double part[kThreads / 32];
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
  __syncthreads();
  double tot = 0;
  for (int i = 0; i < static_cast<int>(blockDim.x >> 5); ++i) tot += part[i];
  const float inv = powf(static_cast<float>(tot / static_cast<double>(n)) + eps, -0.5f);
  float* yr = y + r * ldy;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    yr[i] = w ? xr[i] * inv * load_w(w, wdt, i) : xr[i] * inv;
}

// ---- RoPE: one thread per (token, frequency); it rotates that pair in every head. ----
__global__ void rope_kernel(float* x, int64_t T, int64_t ldx, int n_heads, int head_dim,
                            const int32_t* pos, const float* inv_freq) {
  const int half = head_dim / 2;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < T * half;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = i / half;
    const int j = static_cast<int>(i % half);
    const float theta = inv_freq[j] * static_cast<float>(pos[t]);
    if (theta == 0.0f) continue;  // zero-frequency tail of proportional RoPE: identity
    const float c = cosf(theta), s = sinf(theta);
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + t * ldx + int64_t{h} * head_dim;
      const float a = v[j], b = v[j + half];
      v[j] = a * c - b * s;
      v[j + half] = b * c + a * s;
    }
  }
}

#define FC_ROWS_LOOP(T, n)                                                        \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (T) * (n); \
       i += int64_t{gridDim.x} * blockDim.x)

__global__ void glu_kernel(const float* g, int64_t ldg, const float* u, int64_t ldu, int64_t T,
                           int64_t n, float* o, int64_t ldo, bool silu) {
  FC_ROWS_LOOP(T, n) {
    const int64_t t = i / n, c = i % n;
    const float gv = g[t * ldg + c];
    o[t * ldo + c] = (silu ? silu_f(gv) : gelu_tanh_f(gv)) * u[t * ldu + c];
  }
}

__global__ void add_kernel(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T,
                           int64_t n, float* y, int64_t ldy) {
  FC_ROWS_LOOP(T, n) {
    const int64_t t = i / n, c = i % n;
    y[t * ldy + c] = a[t * lda + c] + b[t * ldb + c];
  }
}

__global__ void scale_kernel(float* x, int64_t ldx, int64_t T, int64_t n, float v) {
  FC_ROWS_LOOP(T, n) x[(i / n) * ldx + i % n] *= v;
}

__global__ void softcap_kernel(float* x, int64_t ldx, int64_t T, int64_t n, float c) {
  FC_ROWS_LOOP(T, n) {
    float* p = x + (i / n) * ldx + i % n;
    *p = c * tanhf(*p / c);
  }
}

__global__ void zero_kernel(float* x, int64_t ldx, int64_t T, int64_t n) {
  FC_ROWS_LOOP(T, n) x[(i / n) * ldx + i % n] = 0.0f;
}

__global__ void embed_kernel(const void* table, WDType dt, int64_t V, int64_t n, int64_t ld,
                             const int32_t* ids, int64_t T, float scale, float* out, int64_t ldo,
                             int* err) {
  FC_ROWS_LOOP(T, n) {
    const int64_t t = i / n, c = i % n;
    const int32_t id = ids[t];
    if (id < 0 || id >= V) {
      out[t * ldo + c] = 0.0f;
      if (c == 0) atomicExch(err, 1);
      continue;
    }
    out[t * ldo + c] = load_w(table, dt, int64_t{id} * ld + c) * scale;
  }
}

__global__ void kv_write_kernel(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                                int64_t row, const int32_t* slots, void* kc, void* vc, WDType dt,
                                float k_scale, float v_scale) {
  FC_ROWS_LOOP(T, row) {
    const int64_t t = i / row, c = i % row;
    const int32_t slot = slots[t];
    if (slot < 0) continue;
    const int64_t off = int64_t{slot} * row + c;
    const float kv = k[t * ldk + c], vv = v[t * ldv + c];
    if (dt == WDType::kFP8) {
      static_cast<uint8_t*>(kc)[off] = f32_e4m3(kv / k_scale);
      static_cast<uint8_t*>(vc)[off] = f32_e4m3(vv / v_scale);
    } else if (dt == WDType::kBF16) {
      static_cast<uint16_t*>(kc)[off] = f32_bf16(kv);
      static_cast<uint16_t*>(vc)[off] = f32_bf16(vv);
    } else {
      static_cast<float*>(kc)[off] = kv;
      static_cast<float*>(vc)[off] = vv;
    }
  }
}

__global__ void convert_kernel(const float* x, int64_t T, int64_t K, int64_t ldx, void* dst,
                               WDType dt) {
  FC_ROWS_LOOP(T, K) {
    const float v = x[(i / K) * ldx + i % K];
    if (dt == WDType::kF16)
      static_cast<__half*>(dst)[i] = __float2half_rn(v);
    else
      static_cast<uint16_t*>(dst)[i] = f32_bf16(v);
  }
}

// One thread per 16-element block: the pqs product then the optional W4A4 QDQ.
__global__ void nvfp4_prepare_kernel(const float* x, int64_t T, int64_t K, int64_t ldx,
                                     const void* pqs, WDType pqs_dt, float input_scale,
                                     float* out) {
  const int64_t nb = K / 16;
  FC_ROWS_LOOP(T, nb) {
    const int64_t t = i / nb, k0 = (i % nb) * 16;
    float v[16];
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const float xv = x[t * ldx + k0 + j];
      v[j] = pqs ? xv * load_w(pqs, pqs_dt, k0 + j) : xv;
    }
    if (input_scale > 0.0f) qdq_block16(v, input_scale, v);
#pragma unroll
    for (int j = 0; j < 16; ++j) out[t * K + k0 + j] = v[j];
  }
}

// Native FP4 activation quantization (spec §2.3 with gA = 1 / input_scale): codes and swizzled
// scales, one thread per 16-block.
__global__ void fp4_quantize_kernel(const float* x, int64_t T, int64_t K, int64_t ldx,
                                    float input_scale, uint8_t* codes, uint8_t* sw) {
  const int64_t nb = K / 16;
  FC_ROWS_LOOP(T, nb) {
    const int64_t t = i / nb, b = i % nb;
    const float* xb = x + t * ldx + b * 16;
    const float ga = 1.0f / input_scale;
    const float inv_ga = 1.0f / ga;
    float amax = 0.0f;
    for (int j = 0; j < 16; ++j) amax = fmaxf(amax, fabsf(xb[j]));
    const uint8_t sb = f32_e4m3(clampf(ga * (amax * (1.0f / 6.0f)), -448.0f, 448.0f));
    const float sa = e4m3_f32(sb);
    const float inv = sa == 0.0f ? 0.0f : 1.0f / (sa * inv_ga);
    uint8_t* c = codes + t * (K / 2) + b * 8;
    for (int j = 0; j < 16; j += 2) {
      const uint8_t lo = f32_e2m1(clampf(xb[j] * inv, -6.0f, 6.0f));
      const uint8_t hi = f32_e2m1(clampf(xb[j + 1] * inv, -6.0f, 6.0f));
      c[j / 2] = static_cast<uint8_t>(lo | (hi << 4));
    }
    sw[swizzled_scale_offset(t, b, nb)] = sb;
  }
}

__global__ void gather_kernel(const float* x, int64_t ldx, const int32_t* rows, int64_t n,
                              int64_t H, float* dst) {
  FC_ROWS_LOOP(n, H) dst[i] = x[int64_t{rows[i / H]} * ldx + i % H];
}

__global__ void scatter_add_kernel(const float* y, const int32_t* rows, const float* w, int64_t n,
                                   int64_t H, float* out, int64_t ldo) {
  FC_ROWS_LOOP(n, H) {
    const int64_t r = i / H;
    out[int64_t{rows[r]} * ldo + i % H] += y[i] * w[r];
  }
}

}  // namespace

void launch_rmsnorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const void* w, WDType wdt,
                    float eps, float* y, int64_t ldy, cudaStream_t s) {
  if (rows <= 0) return;
  rmsnorm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(x, rows, n, ldx, w, wdt, eps, y,
                                                                  ldy);
}
void launch_rope(float* x, int64_t T, int64_t ldx, int n_heads, int head_dim, const int32_t* pos,
                 const float* inv_freq, cudaStream_t s) {
  if (T <= 0 || head_dim < 2) return;
  rope_kernel<<<grid_for(T * (head_dim / 2)), kThreads, 0, s>>>(x, T, ldx, n_heads, head_dim, pos,
                                                                inv_freq);
}
void launch_glu(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t T, int64_t n,
                float* out, int64_t ldo, bool silu, cudaStream_t s) {
  if (T * n <= 0) return;
  glu_kernel<<<grid_for(T * n), kThreads, 0, s>>>(gate, ldg, up, ldu, T, n, out, ldo, silu);
}
void launch_add(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T, int64_t n,
                float* y, int64_t ldy, cudaStream_t s) {
  if (T * n <= 0) return;
  add_kernel<<<grid_for(T * n), kThreads, 0, s>>>(a, lda, b, ldb, T, n, y, ldy);
}
void launch_scale(float* x, int64_t ldx, int64_t T, int64_t n, float v, cudaStream_t s) {
  if (T * n <= 0) return;
  scale_kernel<<<grid_for(T * n), kThreads, 0, s>>>(x, ldx, T, n, v);
}
void launch_softcap(float* x, int64_t ldx, int64_t T, int64_t n, float c, cudaStream_t s) {
  if (T * n <= 0) return;
  softcap_kernel<<<grid_for(T * n), kThreads, 0, s>>>(x, ldx, T, n, c);
}
void launch_zero_rows(float* x, int64_t ldx, int64_t T, int64_t n, cudaStream_t s) {
  if (T * n <= 0) return;
  zero_kernel<<<grid_for(T * n), kThreads, 0, s>>>(x, ldx, T, n);
}
void launch_embed(const void* table, WDType dt, int64_t V, int64_t n, int64_t ld,
                  const int32_t* ids, int64_t T, float scale, float* out, int64_t ldo, int* err,
                  cudaStream_t s) {
  if (T * n <= 0) return;
  embed_kernel<<<grid_for(T * n), kThreads, 0, s>>>(table, dt, V, n, ld, ids, T, scale, out, ldo,
                                                    err);
}
void launch_kv_write(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                     int64_t row_elems, const int32_t* slots, void* kc, void* vc, WDType dt,
                     float k_scale, float v_scale, cudaStream_t s) {
  if (T * row_elems <= 0) return;
  kv_write_kernel<<<grid_for(T * row_elems), kThreads, 0, s>>>(k, ldk, v, ldv, T, row_elems, slots,
                                                               kc, vc, dt, k_scale, v_scale);
}
void launch_convert(const float* x, int64_t T, int64_t K, int64_t ldx, void* dst, WDType dt,
                    cudaStream_t s) {
  if (T * K <= 0) return;
  convert_kernel<<<grid_for(T * K), kThreads, 0, s>>>(x, T, K, ldx, dst, dt);
}
void launch_nvfp4_prepare(const float* x, int64_t T, int64_t K, int64_t ldx, const void* pqs,
                          WDType pqs_dt, float input_scale, float* out, cudaStream_t s) {
  if (T * K <= 0) return;
  nvfp4_prepare_kernel<<<grid_for(T * (K / 16)), kThreads, 0, s>>>(x, T, K, ldx, pqs, pqs_dt,
                                                                   input_scale, out);
}
void launch_fp4_quantize(const float* x, int64_t T, int64_t K, int64_t ldx, float input_scale,
                         uint8_t* codes, uint8_t* swizzled_scales, cudaStream_t s) {
  if (T * K <= 0) return;
  cudaMemsetAsync(swizzled_scales, 0, static_cast<size_t>(swizzled_scale_bytes(T, K / 16)), s);
  fp4_quantize_kernel<<<grid_for(T * (K / 16)), kThreads, 0, s>>>(x, T, K, ldx, input_scale, codes,
                                                                  swizzled_scales);
}
void launch_gather_rows(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t H,
                        float* dst, cudaStream_t s) {
  if (n * H <= 0) return;
  gather_kernel<<<grid_for(n * H), kThreads, 0, s>>>(x, ldx, rows, n, H, dst);
}
void launch_scatter_add_rows(const float* y, const int32_t* rows, const float* w, int64_t n,
                             int64_t H, float* out, int64_t ldo, cudaStream_t s) {
  if (n * H <= 0) return;
  scatter_add_kernel<<<grid_for(n * H), kThreads, 0, s>>>(y, rows, w, n, H, out, ldo);
}

const char* last_launch_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

}  // namespace fc::cuda
