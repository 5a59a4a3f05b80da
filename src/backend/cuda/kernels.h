// Kernel launchers of the CUDA backend. Every launcher takes raw device pointers, element strides
// and a stream, allocates nothing and never synchronises, so a forward step made of them can be
// captured into a CUDA graph. Activations are fp32 [rows, cols] row-major; weights are described
// by a dtype code (WDType) and a row stride. Shapes are in elements unless a name says bytes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace fc::cuda {

// Element type of a weight / table / cache as the kernels see it.
enum class WDType : int { kF32 = 0, kBF16 = 1, kF16 = 2, kFP8 = 3 };

// y[r, :] = x[r, :] · (mean(x[r, :]²) + eps)^-½ · w (w: [n] of wdt, or null). y may alias x.
void launch_rmsnorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const void* w, WDType wdt,
                    float eps, float* y, int64_t ldy, cudaStream_t s);
// NeoX RoPE in place on x [T, n_heads, head_dim] (row stride ldx); pos [T], inv_freq [D/2].
void launch_rope(float* x, int64_t T, int64_t ldx, int n_heads, int head_dim, const int32_t* pos,
                 const float* inv_freq, cudaStream_t s);
// out = act(gate) · up with act = gelu_tanh (silu = false) or silu; out may alias gate or up.
void launch_glu(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t T, int64_t n,
                float* out, int64_t ldo, bool silu, cudaStream_t s);
void launch_add(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T, int64_t n,
                float* y, int64_t ldy, cudaStream_t s);
void launch_scale(float* x, int64_t ldx, int64_t T, int64_t n, float v, cudaStream_t s);
void launch_softcap(float* x, int64_t ldx, int64_t T, int64_t n, float c, cudaStream_t s);
// out[t, :] = table[ids[t], :] · scale over n columns (table row stride ld). An id outside
// [0, V) writes zeros and sets *err (device int) to 1.
void launch_embed(const void* table, WDType dt, int64_t V, int64_t n, int64_t ld,
                  const int32_t* ids, int64_t T, float scale, float* out, int64_t ldo, int* err,
                  cudaStream_t s);
// Paged KV write (backend.h kv_write): cache dt F32, BF16 (RNE) or FP8 (sat_e4m3(x / scale)).
void launch_kv_write(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                     int64_t row_elems, const int32_t* slots, void* kc, void* vc, WDType dt,
                     float k_scale, float v_scale, cudaStream_t s);
// dst[T, K] (row stride K, dtype BF16 or F16, RNE) = x[T, K] (row stride ldx).
void launch_convert(const float* x, int64_t T, int64_t K, int64_t ldx, void* dst, WDType dt,
                    cudaStream_t s);
// NVFP4 activation preparation: out[T, K] (row stride K) = x · pqs (pqs [K] of pqs_dt, or null),
// then the W4A4 quantize-dequantize per 16-block when input_scale > 0. K % 16 == 0.
void launch_nvfp4_prepare(const float* x, int64_t T, int64_t K, int64_t ldx, const void* pqs,
                          WDType pqs_dt, float input_scale, float* out, cudaStream_t s);
// Native FP4 activations: codes [T, K/2] (row stride K/2 bytes) and swizzled E4M3 scales of the
// [T, K/16] block-scale matrix (zeroed padding: the launcher clears the buffer first) with the
// §2.3 math, gA = 1 / input_scale. x: [T, K] row stride ldx.
void launch_fp4_quantize(const float* x, int64_t T, int64_t K, int64_t ldx, float input_scale,
                         uint8_t* codes, uint8_t* swizzled_scales, cudaStream_t s);

// y[T, N] (+)= x[T, K] · Wᵀ on CUDA cores: W dense [N, K] (row stride ldw) widened to fp32,
// fp32 products and sums (the CPU backend's numerics, another summation order).
void launch_linear_simt(const float* x, int64_t T, int64_t ldx, const void* w, WDType wdt,
                        int64_t N, int64_t K, int64_t ldw, float* y, int64_t ldy, bool accumulate,
                        cudaStream_t s);
// Same for an NVFP4 weight (W4A16): codes [N, K/2] (row stride ld bytes), E4M3 block scales
// [N, K/16] (row stride scale_ld bytes), per-tensor multiplier gscale, decoded in registers.
void launch_linear_nvfp4(const float* x, int64_t T, int64_t ldx, const uint8_t* codes, int64_t ld,
                         const uint8_t* scales, int64_t scale_ld, float gscale, int64_t N,
                         int64_t K, float* y, int64_t ldy, bool accumulate, cudaStream_t s);

// Streaming GEMVs (kernels_gemv.cu), the decode path of linear: 16-byte weight loads, fp32 math.
// The *_ok predicates say whether the shapes and alignments allow them (else the SIMT kernels).
bool gemv_nvfp4_ok(const float* x, int64_t ldx, const uint8_t* codes, int64_t ld,
                   const uint8_t* scales, int64_t sld, int64_t K);
void launch_gemv_nvfp4(const float* x, int64_t T, int64_t ldx, const uint8_t* codes, int64_t ld,
                       const uint8_t* scales, int64_t scale_ld, float gscale, int64_t N, int64_t K,
                       float* y, int64_t ldy, bool accumulate, cudaStream_t s);
bool gemv_dense16_ok(const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t K);
void launch_gemv_dense16(const float* x, int64_t T, int64_t ldx, const void* w, WDType wdt,
                         int64_t N, int64_t K, int64_t ldw, float* y, int64_t ldy, bool accumulate,
                         cudaStream_t s);
// out [N, K] BF16 (row stride K) = e2m1(codes) · e4m3(block scales), without the per-tensor scale
// (exact in BF16). codes [N, K/2] row stride ld bytes, scales [N, K/16] row stride scale_ld.
void launch_nvfp4_dequant_bf16(const uint8_t* codes, int64_t ld, const uint8_t* scales,
                               int64_t scale_ld, int64_t N, int64_t K, void* out, cudaStream_t s);

// Paged attention (backend.h AttentionArgs, device pointers), kv dtype F32, BF16 or FP8.
struct AttnParams {
  const float* q;
  int64_t ldq;
  float* out;
  int64_t ldo;
  const void* k_cache;
  const void* v_cache;
  WDType kv;
  float k_scale, v_scale;
  int n_heads, n_kv_heads, head_dim, block_size;
  float scale;
  int sliding_window;
  int n_seqs;
  const int32_t *q_begin, *n_q, *pos0, *block_tables, *table_offset;
  const int32_t* kv_limit;  // per batch row, or null (backend.h AttentionArgs::kv_limit)
};
void launch_attention(const AttnParams& p, cudaStream_t s);
// Decode attention (every sequence brings at most one query; n_q 0 marks a padding sequence),
// split over the keys (kernels_attention_decode.cu). part: attention_split_ws_bytes of workspace.
bool attention_decode_split_ok(const AttnParams& p);
int attention_decode_head_chunks(const AttnParams& p);
void launch_attention_decode(const AttnParams& p, int splits, float* part, cudaStream_t s);

// Encoder ops (kernels_encoder.cu; backend.h SegmentAttentionArgs, avg_pool, sub_mul; clamp is
// the audio block's launch_clamp).
struct SegAttnParams {
  const float *q, *k, *v;
  int64_t ldq, ldk, ldv;
  float* out;
  int64_t ldo;
  int n_heads, n_kv_heads, head_dim;
  float scale;
  const int32_t* seg;  // [n_segments + 1]
  int n_segments;
  int64_t total_rows;  // seg[n_segments] (host copy: the grid size)
};
void launch_attention_segments(const SegAttnParams& p, cudaStream_t s);
void launch_avg_pool(const float* x, int64_t ldx, int grid_h, int grid_w, int k, int64_t n,
                     float scale, float* out, int64_t ldo, cudaStream_t s);
void launch_sub_mul(float* x, int64_t ldx, int64_t T, int64_t n, const void* sub, WDType sub_dt,
                    const void* mul, WDType mul_dt, cudaStream_t s);

// MoE routing (backend.h moe_route): one thread per token. pes: per_expert_scale [E] of pes_dt.
void launch_moe_route(const float* logits, int64_t ldl, int64_t T, int E, int k, const void* pes,
                      WDType pes_dt, int32_t* idx, float* weights, cudaStream_t s);
// dst[r, :] = x[rows[r], :] for r < n (n columns H, dst row stride H).
void launch_gather_rows(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t H,
                        float* dst, cudaStream_t s);
// out[rows[r], :] += y[r, :] · w[r] for r < n (rows distinct within one call).
void launch_scatter_add_rows(const float* y, const int32_t* rows, const float* w, int64_t n,
                             int64_t H, float* out, int64_t ldo, cudaStream_t s);
// x[T, n] = 0 (row stride ldx).
void launch_zero_rows(float* x, int64_t ldx, int64_t T, int64_t n, cudaStream_t s);

// ---- Audio tower (backend.h "Audio tower ops"; kernels_audio.cu) ----
void launch_clamp(float* x, int64_t ldx, int64_t T, int64_t n, float lo, float hi, cudaStream_t s);
void launch_silu(const float* x, int64_t ldx, int64_t T, int64_t n, float* out, int64_t ldo,
                 cudaStream_t s);
// out = a · sigmoid(b) (torch glu).
void launch_glu_sigmoid(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T,
                        int64_t n, float* out, int64_t ldo, cudaStream_t s);
// Row LayerNorm; w / b: [n] of wdt / bdt, or null. y may alias x.
void launch_layernorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const void* w,
                      WDType wdt, const void* b, WDType bdt, float eps, float* y, int64_t ldy,
                      cudaStream_t s);
void launch_conv2d_patches(const float* x, int64_t T, int64_t F, int64_t C, int k, int st, int p,
                           int64_t t0, int64_t n_t, float* out, cudaStream_t s);
// w: [C, K] of wdt with row stride ldw.
void launch_depthwise_conv1d_causal(const float* x, int64_t ldx, int64_t T, int64_t C,
                                    const void* w, WDType wdt, int64_t K, int64_t ldw, float* out,
                                    int64_t ldo, cudaStream_t s);
// backend.h LocalAttentionArgs with device pointers; window <= kLocalAttnMaxWindow.
constexpr int kLocalAttnMaxWindow = 64;
struct LocalAttnParams {
  const float *q, *k, *v;
  int64_t ldq, ldk, ldv;
  float* out;
  int64_t ldo, T;
  int n_heads, head_dim;
  const float* q_scale;
  float k_scale;
  const float* rel_k;
  int64_t ld_rel;
  int window;
  float logit_cap;
};
void launch_local_attention(const LocalAttnParams& p, cudaStream_t s);

// The last launch error as text, or null if none (cudaGetLastError).
const char* last_launch_error();

}  // namespace fc::cuda
