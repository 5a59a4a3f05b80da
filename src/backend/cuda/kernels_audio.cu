// Kernels of the audio-tower ops (backend.h, "Audio tower ops"): element-wise clamp / silu / glu,
// row LayerNorm, conv patches (im2col), causal depthwise conv and the local relative-position
// attention. Straightforward one-thread-per-output kernels (the tower is small next to the text
// model); numerics fp32 as the CPU backend, sums of LayerNorm in double like its reference.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/device_math.h"
#include "backend/cuda/kernels.h"

namespace fc::cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t total) {
  const int64_t b = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > (1 << 20) ? (1 << 20) : b));
}

__device__ __forceinline__ float ld_w(const void* p, WDType dt, int64_t i) {
  switch (dt) {
    case WDType::kBF16:
      return bf16_f32(static_cast<const uint16_t*>(p)[i]);
    case WDType::kF16:
      return f16_f32(static_cast<const uint16_t*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

#define FC_AUDIO_LOOP(total)                                                    \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (total); \
       i += int64_t{gridDim.x} * blockDim.x)

__global__ void clamp_kernel(float* x, int64_t ldx, int64_t T, int64_t n, float lo, float hi) {
  FC_AUDIO_LOOP(T * n) {
    float* p = x + (i / n) * ldx + i % n;
    *p = fminf(fmaxf(*p, lo), hi);
  }
}

__global__ void silu_kernel(const float* x, int64_t ldx, int64_t T, int64_t n, float* o,
                            int64_t ldo) {
  FC_AUDIO_LOOP(T * n) {
    const float v = x[(i / n) * ldx + i % n];
    o[(i / n) * ldo + i % n] = v / (1.0f + expf(-v));
  }
}

__global__ void glu_sigmoid_kernel(const float* a, int64_t lda, const float* b, int64_t ldb,
                                   int64_t T, int64_t n, float* o, int64_t ldo) {
  FC_AUDIO_LOOP(T * n) {
    const int64_t t = i / n, c = i % n;
    o[t * ldo + c] = a[t * lda + c] / (1.0f + expf(-b[t * ldb + c]));
  }
}

// One block per row; mean, then the centred sum of squares, both in double.
__global__ void layernorm_kernel(const float* x, int64_t n, int64_t ldx, const void* w, WDType wdt,
                                 const void* b, WDType bdt, float eps, float* y, int64_t ldy) {
  __shared__ double part[kThreads / 32];
  const float* xr = x + blockIdx.x * ldx;
  auto block_sum = [&](double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    double tot = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x >> 5); ++i) tot += part[i];
    return tot;
  };
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += xr[i];
  const double mean = block_sum(s) / static_cast<double>(n);
  double ss = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += (xr[i] - mean) * (xr[i] - mean);
  const double var = block_sum(ss) / static_cast<double>(n);
  const float m = static_cast<float>(mean);
  const float inv = 1.0f / sqrtf(static_cast<float>(var) + eps);
  float* yr = y + blockIdx.x * ldy;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float v = (xr[i] - m) * inv;
    if (w) v *= ld_w(w, wdt, i);
    if (b) v += ld_w(b, bdt, i);
    yr[i] = v;
  }
}

__global__ void conv2d_patches_kernel(const float* x, int64_t T, int64_t F, int64_t C, int k, int s,
                                      int p, int64_t t0, int64_t rows, int64_t Fo, float* out) {
  const int64_t cols = C * k * k;
  FC_AUDIO_LOOP(rows * cols) {
    const int64_t r = i / cols, col = i % cols;
    const int64_t t = t0 + r / Fo, f = r % Fo;
    const int64_t c = col / (k * k), ki = (col / k) % k, kj = col % k;
    const int64_t ti = s * t - p + ki, fj = s * f - p + kj;
    out[i] = ti >= 0 && ti < T && fj >= 0 && fj < F ? x[(ti * F + fj) * C + c] : 0.0f;
  }
}

__global__ void depthwise_causal_kernel(const float* x, int64_t ldx, int64_t T, int64_t C,
                                        const void* w, WDType wdt, int64_t K, int64_t ldw, float* o,
                                        int64_t ldo) {
  FC_AUDIO_LOOP(T * C) {
    const int64_t t = i / C, c = i % C;
    float acc = 0;
    for (int64_t j = 0; j < K; ++j) {
      const int64_t ti = t - (K - 1) + j;
      if (ti >= 0) acc += ld_w(w, wdt, c * ldw + j) * x[ti * ldx + c];
    }
    o[t * ldo + c] = acc;
  }
}

// One thread per (query row, head): the window's logits in registers, then the weighted values.
__global__ void local_attention_kernel(LocalAttnParams a) {
  FC_AUDIO_LOOP(a.T * a.n_heads) {
    const int64_t t = i / a.n_heads, h = i % a.n_heads;
    const int D = a.head_dim;
    const float* q = a.q + t * a.ldq + h * D;
    const int64_t lo = t - a.window + 1 > 0 ? t - a.window + 1 : 0;
    float sc[kLocalAttnMaxWindow];
    float mx = -INFINITY;
    for (int64_t kv = lo; kv <= t; ++kv) {
      const float* k = a.k + kv * a.ldk + h * D;
      const float* r = a.rel_k + (t - kv) * a.ld_rel + h * D;
      float ac = 0, bd = 0;
      for (int d = 0; d < D; ++d) {
        const float qs = q[d] * a.q_scale[d];
        ac += qs * (k[d] * a.k_scale);
        bd += qs * r[d];
      }
      const float l = a.logit_cap * tanhf((ac + bd) / a.logit_cap);
      sc[kv - lo] = l;
      mx = fmaxf(mx, l);
    }
    float sum = 0;
    for (int64_t j = 0; j <= t - lo; ++j) sum += (sc[j] = expf(sc[j] - mx));
    float* o = a.out + t * a.ldo + h * D;
    for (int d = 0; d < D; ++d) {
      float acc = 0;
      for (int64_t kv = lo; kv <= t; ++kv) acc += sc[kv - lo] * a.v[kv * a.ldv + h * D + d];
      o[d] = acc / sum;
    }
  }
}

}  // namespace

void launch_clamp(float* x, int64_t ldx, int64_t T, int64_t n, float lo, float hi, cudaStream_t s) {
  if (T * n <= 0) return;
  clamp_kernel<<<blocks_for(T * n), kThreads, 0, s>>>(x, ldx, T, n, lo, hi);
}

void launch_silu(const float* x, int64_t ldx, int64_t T, int64_t n, float* out, int64_t ldo,
                 cudaStream_t s) {
  if (T * n <= 0) return;
  silu_kernel<<<blocks_for(T * n), kThreads, 0, s>>>(x, ldx, T, n, out, ldo);
}

void launch_glu_sigmoid(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T,
                        int64_t n, float* out, int64_t ldo, cudaStream_t s) {
  if (T * n <= 0) return;
  glu_sigmoid_kernel<<<blocks_for(T * n), kThreads, 0, s>>>(a, lda, b, ldb, T, n, out, ldo);
}

void launch_layernorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const void* w,
                      WDType wdt, const void* b, WDType bdt, float eps, float* y, int64_t ldy,
                      cudaStream_t s) {
  if (rows <= 0 || n <= 0) return;
  layernorm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(x, n, ldx, w, wdt, b, bdt, eps,
                                                                    y, ldy);
}

void launch_conv2d_patches(const float* x, int64_t T, int64_t F, int64_t C, int k, int st, int p,
                           int64_t t0, int64_t n_t, float* out, cudaStream_t s) {
  const int64_t Fo = (F + 2 * p - k) / st + 1, rows = n_t * Fo;
  if (rows <= 0) return;
  conv2d_patches_kernel<<<blocks_for(rows * C * k * k), kThreads, 0, s>>>(x, T, F, C, k, st, p, t0,
                                                                          rows, Fo, out);
}

void launch_depthwise_conv1d_causal(const float* x, int64_t ldx, int64_t T, int64_t C,
                                    const void* w, WDType wdt, int64_t K, int64_t ldw, float* out,
                                    int64_t ldo, cudaStream_t s) {
  if (T * C <= 0) return;
  depthwise_causal_kernel<<<blocks_for(T * C), kThreads, 0, s>>>(x, ldx, T, C, w, wdt, K, ldw, out,
                                                                 ldo);
}

void launch_local_attention(const LocalAttnParams& p, cudaStream_t s) {
  if (p.T * p.n_heads <= 0) return;
  local_attention_kernel<<<blocks_for(p.T * p.n_heads), 128, 0, s>>>(p);
}

}  // namespace fc::cuda
