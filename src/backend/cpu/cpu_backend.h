// The CPU implementation of fc::Backend: fp32 activations in host memory, weights copied at upload
// into huge-page memory (or used in place from the checkpoint mapping), data-parallel over a
// ThreadPool owned by the caller.
#pragma once

#include <vector>

#include "backend/backend.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/weight_arena.h"
#include "core/thread_pool.h"

namespace fc::cpu {

struct CpuOptions {
  // NVFP4 weights with an input_scale: put activations through the W4A4 quantize-dequantize
  // first (vLLM's NVFP4 emulation), instead of W4A16 (fp32 activations).
  bool emulate_w4a4 = false;
  // NVFP4 W4A16 kernel family (kAuto: the best this CPU has; others for benchmarks and tests,
  // e.g. kAvx2 to compare the fp32 decode kernels with kAvx2I16). Must be supported here.
  MatmulIsa nvfp4_isa = MatmulIsa::kAuto;
  // Opt-in, NOT exact: NVFP4 W4A16 prefill steps (>= kPrefillInt8MinRows rows) with activations
  // quantized to int8 per 16-column block (nvfp4_prefill_i8.h; KL against the exact path in
  // docs/benchmarks.md). Decode and W4A4 emulation are unaffected.
  bool prefill_int8 = false;
  // Opt-in, NOT exact: the same int8 activations for the NVFP4 W4A16 steps of fewer rows (decode,
  // small batches, speculative verification, MoE experts; nvfp4_prefill_i8.h's direct tiles).
  bool decode_int8 = false;
  // Weights copied at upload into backend-owned anonymous memory on transparent huge pages
  // (weight_arena.h: decode streams them ~2x faster than from the checkpoint's mmap'ed 4 KiB
  // page-cache pages on the Xeon of docs/benchmarks.md). false: used in place from the mapping
  // (no extra memory, no copy at load; `--cpu-weights-mmap`).
  bool copy_weights = true;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(ThreadPool& pool, CpuOptions opts = {}) : pool_(pool), opts_(opts) {}
  std::string name() const override { return "cpu"; }
  ThreadPool& pool() { return pool_; }

  void* alloc(size_t bytes) override;
  void free(void* p) override;
  void to_device(void* dst, const void* src, size_t bytes) override;
  void to_host(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  Weight upload(const Weight& host) override;
  // Bytes of weights copied by upload (CpuOptions::copy_weights).
  size_t weight_bytes_copied() const { return arena_.bytes(); }
  // Whether the copy stopped for want of memory (the later weights stay in the mapping).
  bool weight_copy_stopped() const { return arena_.refused(); }

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
  // cpu_moe.cpp: experts in parallel, each expert's matmuls on one thread.
  void moe_experts(const float* x, int64_t ldx, int64_t T, const int32_t* idx, const float* weights,
                   int k, const Weight* gate, const Weight* up, const Weight* down, int E,
                   float* out, int64_t ldo) override;

  // Audio tower ops (audio_ops.cpp).
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

 private:
  // linear on a given pool (moe_experts runs whole experts per pool thread, each on a
  // one-thread pool) with a caller-owned NVFP4 activation scratch.
  void linear_on(ThreadPool& pool, std::vector<float>& scratch, const float* x, int64_t T,
                 int64_t ldx, const Weight& w, float* y, int64_t ldy, bool accumulate);

  // moe_experts over at most kChunk tokens (cpu_moe.cpp).
  void moe_chunk(const float* x, int64_t ldx, int64_t T, const int32_t* idx, const float* weights,
                 int k, const Weight* gate, const Weight* up, const Weight* down, int E, float* out,
                 int64_t ldo);

  ThreadPool& pool_;
  CpuOptions opts_;
  WeightArena arena_;                 // upload's copies (CpuOptions::copy_weights)
  std::vector<float> nvfp4_scratch_;  // activations prepared for NVFP4 linears (pqs / W4A4)
};

}  // namespace fc::cpu
