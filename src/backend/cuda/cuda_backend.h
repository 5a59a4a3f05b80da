// The CUDA implementation of fc::Backend: fp32 activations in device memory, weights uploaded
// once (compacted: row stride = cols), every op a kernel launch on one stream.
//
// Numerics of linear (y = x · Wᵀ, fp32 x and y):
//  - T <= CudaOptions::simt_max_rows, or exact_linear: CUDA-core kernels (kernels_linear.cu),
//    the weight widened to fp32 in registers, fp32 products and sums: the CPU backend's numerics
//    up to summation order. NVFP4 always runs this way (W4A16: codes and scales decoded in
//    registers; pre_quant_scale applied to x first; emulate_w4a4 adds the activation QDQ) unless
//    T is large (below).
//  - NVFP4 with T >= nvfp4_dequant_min_rows: the weight dequantized to BF16 (exact) chunk by
//    chunk, cuBLAS BF16 GEMMs with fp32 accumulation, per-tensor scale as alpha (activations
//    rounded to BF16).
//  - larger T, dense weights: cuBLAS GemmEx with fp32 accumulation (CUBLAS_COMPUTE_32F). F32
//    weights: plain fp32 SGEMM (no TF32). BF16/F16 weights: x is rounded to the weight's dtype
//    first (tensor cores), a relative error of ~2⁻⁹ per activation, as vLLM's bf16 activations.
//  - native_fp4 (Blackwell, compile-checked, untested on hardware): NVFP4 weights with an
//    input_scale go through cuBLASLt's block-scaled FP4 GEMM (W4A4: activations quantized with
//    the §2.3 math, swizzled scales).
//
// Workspace: ops take scratch from one device buffer owned by the backend (never allocated inside
// an op unless it must grow; reserve_workspace() sizes it up front so a captured CUDA graph sees
// no allocation). moe_experts synchronises once (it reads the routing to the host); every other
// op is asynchronous on stream().
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "backend/backend.h"

namespace fc::cuda {

struct CudaOptions {
  int device = 0;
  bool emulate_w4a4 = false;  // NVFP4 with input_scale: activation QDQ first (as CpuOptions)
  bool exact_linear = false;  // every dense linear on the fp32 CUDA-core path
  int simt_max_rows = 8;      // T up to this: CUDA-core linear; above: cuBLAS
  bool native_fp4 = false;    // Blackwell block-scaled FP4 GEMM for NVFP4 (untested)
  // Decode-sized linears: 2 = the streaming GEMVs (kernels_gemv.cu, 16-byte loads) where shapes
  // allow, 1 = the plain SIMT kernels (kernels_linear.cu) always.
  int gemv_version = 2;
  // NVFP4 linears of at least this many rows (and no W4A4 emulation, not exact_linear) run as
  // BF16 tensor-core GEMMs over the weight dequantized in chunks (exact weights, activations
  // rounded to BF16 as the dense cuBLAS path); 0 = never.
  int nvfp4_dequant_min_rows = 32;
  size_t workspace_bytes = 64ull << 20;  // initial scratch; grows on demand
};

// Number of usable CUDA devices; 0 when the driver or runtime reports none or fails.
int device_count();
// Why device_count() is 0 (the CUDA error string), or empty.
std::string device_error();

class CudaBackend final : public Backend {
 public:
  // Throws fc::Error naming the problem when no GPU is usable.
  explicit CudaBackend(CudaOptions opts = {});
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return "cuda"; }
  // "NVIDIA H200 (sm_90, 132 SMs, 140 GiB)"
  std::string device_description() const;
  void* stream() const;  // the cudaStream_t every op runs on
  void synchronize();
  // Makes the scratch buffer at least `bytes` large (call before capturing a graph).
  void reserve_workspace(size_t bytes);
  // dst[0, bytes) = 0 on the stream (benchmarks: a plain valid KV state).
  void zero(void* dst, size_t bytes);

  bool supports_graphs() const override { return true; }
  void begin_capture() override;
  int64_t end_capture() override;
  bool replay(int64_t id) override;
  void drop_graph(int64_t id) override;

  void* alloc(size_t bytes) override;
  void free(void* p) override;
  void to_device(void* dst, const void* src, size_t bytes) override;
  void to_host(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  Weight upload(const Weight& host) override;
  std::optional<DeviceMemory> memory() const override;

  void linear(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y, int64_t ldy,
              bool accumulate) override;
  void rmsnorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const Weight* w, float eps,
               float* y, int64_t ldy) override;
  void rope(float* x, int64_t T, int64_t ldx, int n_heads, int head_dim, const int32_t* pos,
            const float* inv_freq) override;
  void gelu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t T, int64_t n,
                float* out, int64_t ldo) override;
  void silu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t T, int64_t n,
                float* out, int64_t ldo) override;
  void add(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T, int64_t n, float* y,
           int64_t ldy) override;
  void scale(float* x, int64_t ldx, int64_t T, int64_t n, float s) override;
  void embed(const Weight& table, const int32_t* ids, int64_t T, float scale, float* out,
             int64_t ldo) override;
  void softcap(float* x, int64_t ldx, int64_t T, int64_t n, float c) override;
  void kv_write(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                int64_t row_elems, const int32_t* slots, void* k_cache, void* v_cache,
                DType cache_dtype, float k_scale = 1.0f, float v_scale = 1.0f) override;
  void attention(const AttentionArgs& a) override;
  void attention_segments(const SegmentAttentionArgs& a) override;
  void avg_pool(const float* x, int64_t ldx, int grid_h, int grid_w, int k, int64_t n, float scale,
                float* out, int64_t ldo) override;
  void sub_mul(float* x, int64_t ldx, int64_t T, int64_t n, const Weight& sub,
               const Weight& mul) override;
  void moe_route(const float* logits, int64_t ldl, int64_t T, int E, int k,
                 const Weight& per_expert_scale, int32_t* idx, float* weights) override;
  void moe_experts(const float* x, int64_t ldx, int64_t T, const int32_t* idx, const float* weights,
                   int k, const Weight* gate, const Weight* up, const Weight* down, int E,
                   float* out, int64_t ldo) override;

  // Audio tower ops (cuda_audio_ops.cpp, kernels_audio.cu).
  void clamp(float* x, int64_t ldx, int64_t T, int64_t n, float lo, float hi) override;
  void silu(const float* x, int64_t ldx, int64_t T, int64_t n, float* out, int64_t ldo) override;
  void glu(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T, int64_t n,
           float* out, int64_t ldo) override;
  void layernorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const Weight* w,
                 const Weight* b, float eps, float* y, int64_t ldy) override;
  void conv2d_patches(const float* x, int64_t T, int64_t F, int64_t C, int k, int s, int p,
                      int64_t t0, int64_t n_t, float* out) override;
  void depthwise_conv1d_causal(const float* x, int64_t ldx, int64_t T, int64_t C, const Weight& w,
                               float* out, int64_t ldo) override;
  void local_attention(const LocalAttentionArgs& a) override;

  struct Impl;

 private:
  void linear_ws(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y, int64_t ldy,
                 bool accumulate, char* ws);
  size_t linear_ws_need(int64_t T, const Weight& w) const;
  bool nvfp4_dequant_path(int64_t T, const Weight& w) const;
  void linear_nvfp4_dequant(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y,
                            int64_t ldy, bool accumulate, char* ws);
  char* scratch(size_t need);  // the workspace, at least `need` bytes
  int* embed_error_flag();     // device pointer of the bad-token-id flag
  std::unique_ptr<Impl> impl_;
  CudaOptions opts_;
};

}  // namespace fc::cuda
