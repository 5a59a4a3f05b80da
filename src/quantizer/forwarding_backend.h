// A Backend decorator that forwards every call to an inner backend. The quantizer derives from it
// to observe (calibration) or rewrite (evaluation) single operations while the model runs
// unchanged. The quantizer runs on the CPU backend, so recorded pointers are host memory.
#pragma once

#include <string>

#include "backend/backend.h"

namespace fc::quantizer {

class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(Backend& inner) : in_(inner) {}
  Backend& inner() { return in_; }

  std::string name() const override { return in_.name(); }
  void* alloc(size_t bytes) override { return in_.alloc(bytes); }
  void free(void* p) override { in_.free(p); }
  void to_device(void* dst, const void* src, size_t bytes) override {
    in_.to_device(dst, src, bytes);
  }
  void to_host(void* dst, const void* src, size_t bytes) override { in_.to_host(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { in_.copy(dst, src, bytes); }
  Weight upload(const Weight& host) override { return in_.upload(host); }
  void linear(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y, int64_t ldy,
              bool accumulate) override {
    in_.linear(x, T, ldx, w, y, ldy, accumulate);
  }
  void rmsnorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const Weight* w, float eps,
               float* y, int64_t ldy) override {
    in_.rmsnorm(x, rows, n, ldx, w, eps, y, ldy);
  }
  void rope(float* x, int64_t T, int64_t ldx, int n_heads, int head_dim, const int32_t* pos,
            const float* inv_freq) override {
    in_.rope(x, T, ldx, n_heads, head_dim, pos, inv_freq);
  }
  void gelu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t T, int64_t n,
                float* out, int64_t ldo) override {
    in_.gelu_mul(gate, ldg, up, ldu, T, n, out, ldo);
  }
  void silu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t T, int64_t n,
                float* out, int64_t ldo) override {
    in_.silu_mul(gate, ldg, up, ldu, T, n, out, ldo);
  }
  void add(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T, int64_t n, float* y,
           int64_t ldy) override {
    in_.add(a, lda, b, ldb, T, n, y, ldy);
  }
  void scale(float* x, int64_t ldx, int64_t T, int64_t n, float s) override {
    in_.scale(x, ldx, T, n, s);
  }
  void embed(const Weight& table, const int32_t* ids, int64_t T, float scale, float* out,
             int64_t ldo) override {
    in_.embed(table, ids, T, scale, out, ldo);
  }
  void softcap(float* x, int64_t ldx, int64_t T, int64_t n, float c) override {
    in_.softcap(x, ldx, T, n, c);
  }
  void kv_write(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                int64_t row_elems, const int32_t* slots, void* k_cache, void* v_cache,
                DType cache_dtype, float k_scale, float v_scale) override {
    in_.kv_write(k, ldk, v, ldv, T, row_elems, slots, k_cache, v_cache, cache_dtype, k_scale,
                 v_scale);
  }
  void attention(const AttentionArgs& a) override { in_.attention(a); }
  void attention_segments(const SegmentAttentionArgs& a) override { in_.attention_segments(a); }
  void avg_pool(const float* x, int64_t ldx, int grid_h, int grid_w, int k, int64_t n, float scale,
                float* out, int64_t ldo) override {
    in_.avg_pool(x, ldx, grid_h, grid_w, k, n, scale, out, ldo);
  }
  void sub_mul(float* x, int64_t ldx, int64_t T, int64_t n, const Weight& sub,
               const Weight& mul) override {
    in_.sub_mul(x, ldx, T, n, sub, mul);
  }
  void moe_route(const float* logits, int64_t ldl, int64_t T, int E, int k,
                 const Weight& per_expert_scale, int32_t* idx, float* weights) override {
    in_.moe_route(logits, ldl, T, E, k, per_expert_scale, idx, weights);
  }
  void moe_experts(const float* x, int64_t ldx, int64_t T, const int32_t* idx, const float* weights,
                   int k, const Weight* gate, const Weight* up, const Weight* down, int E,
                   float* out, int64_t ldo) override {
    in_.moe_experts(x, ldx, T, idx, weights, k, gate, up, down, E, out, ldo);
  }
  // Audio tower ops: passed through.
  void clamp(float* x, int64_t ldx, int64_t T, int64_t n, float lo, float hi) override {
    in_.clamp(x, ldx, T, n, lo, hi);
  }
  void silu(const float* x, int64_t ldx, int64_t T, int64_t n, float* out, int64_t ldo) override {
    in_.silu(x, ldx, T, n, out, ldo);
  }
  void glu(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T, int64_t n,
           float* out, int64_t ldo) override {
    in_.glu(a, lda, b, ldb, T, n, out, ldo);
  }
  void layernorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const Weight* w,
                 const Weight* b, float eps, float* y, int64_t ldy) override {
    in_.layernorm(x, rows, n, ldx, w, b, eps, y, ldy);
  }
  void conv2d_patches(const float* x, int64_t T, int64_t F, int64_t C, int k, int s, int p,
                      int64_t t0, int64_t n_t, float* out) override {
    in_.conv2d_patches(x, T, F, C, k, s, p, t0, n_t, out);
  }
  void depthwise_conv1d_causal(const float* x, int64_t ldx, int64_t T, int64_t C, const Weight& w,
                               float* out, int64_t ldo) override {
    in_.depthwise_conv1d_causal(x, ldx, T, C, w, out, ldo);
  }
  void local_attention(const LocalAttentionArgs& a) override { in_.local_attention(a); }

 private:
  Backend& in_;
};

// The HF module path of a weight tensor name ("a.b.q_proj.weight" -> "a.b.q_proj").
inline std::string module_of(const std::string& tensor) {
  const std::string suf = ".weight";
  if (tensor.size() > suf.size() &&
      tensor.compare(tensor.size() - suf.size(), suf.size(), suf) == 0)
    return tensor.substr(0, tensor.size() - suf.size());
  return tensor;
}

// Module path of expert e's projection `proj` (gate_proj / up_proj / down_proj) given any expert
// weight's tensor name: HF 3-D "P.experts.gate_up_proj" or per-expert
// "P.experts.3.gate_proj.weight".
inline std::string expert_module(const std::string& any_expert_tensor, int e,
                                 const std::string& proj) {
  const size_t at = any_expert_tensor.rfind("experts.");
  const std::string prefix = any_expert_tensor.substr(0, at + 8);
  return prefix + std::to_string(e) + "." + proj;
}

}  // namespace fc::quantizer
