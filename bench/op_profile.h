// Per-op wall time of a forward pass: a Backend that forwards every call to another one and
// adds the call's duration to a category (linears by weight name with the layer index removed,
// e.g. "linear self_attn.q_proj [nvfp4]"; other ops by name). The CPU backend runs each op to
// completion before returning, so the sums are the ops' own times; the rest of a step (the
// model's glue code) is the difference to the step's time. Used by bench_model --profile-ops.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "core/dtype.h"

namespace fc::bench {

class TimedBackend final : public Backend {
 public:
  explicit TimedBackend(Backend& inner) : b_(inner) {}

  void reset() { t_.clear(); }
  void set_times(std::map<std::string, std::pair<double, long>> t) { t_ = std::move(t); }
  // Category → (seconds, calls).
  const std::map<std::string, std::pair<double, long>>& times() const { return t_; }

  // Prints the categories sorted by time, each as seconds and share of `step_s` (the step's wall
  // time), then the remainder (time outside backend ops).
  void print(double step_s) const {
    std::vector<std::pair<std::string, std::pair<double, long>>> v(t_.begin(), t_.end());
    std::sort(v.begin(), v.end(),
              [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
    double sum = 0;
    for (const auto& [name, tc] : v) {
      std::printf("  %-44s %9.4f s %6.1f%% %7ld calls\n", name.c_str(), tc.first,
                  100.0 * tc.first / step_s, tc.second);
      sum += tc.first;
    }
    std::printf("  %-44s %9.4f s %6.1f%%\n", "(outside backend ops)", step_s - sum,
                100.0 * (step_s - sum) / step_s);
  }

  std::string name() const override { return b_.name(); }
  void* alloc(size_t bytes) override { return b_.alloc(bytes); }
  void free(void* p) override { b_.free(p); }
  void to_device(void* d, const void* s, size_t n) override { b_.to_device(d, s, n); }
  void to_host(void* d, const void* s, size_t n) override { b_.to_host(d, s, n); }
  void copy(void* d, const void* s, size_t n) override { b_.copy(d, s, n); }
  Weight upload(const Weight& host) override { return b_.upload(host); }
  std::optional<DeviceMemory> memory() const override { return b_.memory(); }

  void linear(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y, int64_t ldy,
              bool accumulate) override {
    time(linear_name(w), [&] { b_.linear(x, T, ldx, w, y, ldy, accumulate); });
  }
  void rmsnorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const Weight* w, float eps,
               float* y, int64_t ldy) override {
    time("rmsnorm", [&] { b_.rmsnorm(x, rows, n, ldx, w, eps, y, ldy); });
  }
  void rope(float* x, int64_t T, int64_t ldx, int n_heads, int head_dim, const int32_t* pos,
            const float* inv_freq) override {
    time("rope", [&] { b_.rope(x, T, ldx, n_heads, head_dim, pos, inv_freq); });
  }
  void gelu_mul(const float* g, int64_t ldg, const float* u, int64_t ldu, int64_t T, int64_t n,
                float* o, int64_t ldo) override {
    time("gelu_mul", [&] { b_.gelu_mul(g, ldg, u, ldu, T, n, o, ldo); });
  }
  void silu_mul(const float* g, int64_t ldg, const float* u, int64_t ldu, int64_t T, int64_t n,
                float* o, int64_t ldo) override {
    time("silu_mul", [&] { b_.silu_mul(g, ldg, u, ldu, T, n, o, ldo); });
  }
  void add(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T, int64_t n, float* y,
           int64_t ldy) override {
    time("add", [&] { b_.add(a, lda, b, ldb, T, n, y, ldy); });
  }
  void scale(float* x, int64_t ldx, int64_t T, int64_t n, float s) override {
    time("scale", [&] { b_.scale(x, ldx, T, n, s); });
  }
  void embed(const Weight& table, const int32_t* ids, int64_t T, float s, float* out,
             int64_t ldo) override {
    time("embed", [&] { b_.embed(table, ids, T, s, out, ldo); });
  }
  void softcap(float* x, int64_t ldx, int64_t T, int64_t n, float c) override {
    time("softcap", [&] { b_.softcap(x, ldx, T, n, c); });
  }
  void kv_write(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                int64_t row_elems, const int32_t* slots, void* kc, void* vc, DType dt, float ks,
                float vs) override {
    time("kv_write", [&] { b_.kv_write(k, ldk, v, ldv, T, row_elems, slots, kc, vc, dt, ks, vs); });
  }
  void attention(const AttentionArgs& a) override {
    time("attention", [&] { b_.attention(a); });
  }
  void attention_segments(const SegmentAttentionArgs& a) override {
    time("attention_segments", [&] { b_.attention_segments(a); });
  }
  void avg_pool(const float* x, int64_t ldx, int gh, int gw, int k, int64_t n, float s, float* out,
                int64_t ldo) override {
    time("avg_pool", [&] { b_.avg_pool(x, ldx, gh, gw, k, n, s, out, ldo); });
  }
  void sub_mul(float* x, int64_t ldx, int64_t T, int64_t n, const Weight& sub,
               const Weight& mul) override {
    time("sub_mul", [&] { b_.sub_mul(x, ldx, T, n, sub, mul); });
  }
  void moe_route(const float* l, int64_t ldl, int64_t T, int E, int k, const Weight& pes,
                 int32_t* idx, float* w) override {
    time("moe_route", [&] { b_.moe_route(l, ldl, T, E, k, pes, idx, w); });
  }
  void moe_experts(const float* x, int64_t ldx, int64_t T, const int32_t* idx, const float* w,
                   int k, const Weight* g, const Weight* u, const Weight* d, int E, float* out,
                   int64_t ldo) override {
    time("moe_experts", [&] { b_.moe_experts(x, ldx, T, idx, w, k, g, u, d, E, out, ldo); });
  }
  void clamp(float* x, int64_t ldx, int64_t T, int64_t n, float lo, float hi) override {
    time("clamp", [&] { b_.clamp(x, ldx, T, n, lo, hi); });
  }
  void silu(const float* x, int64_t ldx, int64_t T, int64_t n, float* out, int64_t ldo) override {
    time("silu", [&] { b_.silu(x, ldx, T, n, out, ldo); });
  }
  void glu(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T, int64_t n,
           float* out, int64_t ldo) override {
    time("glu", [&] { b_.glu(a, lda, b, ldb, T, n, out, ldo); });
  }
  void layernorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const Weight* w,
                 const Weight* b, float eps, float* y, int64_t ldy) override {
    time("layernorm", [&] { b_.layernorm(x, rows, n, ldx, w, b, eps, y, ldy); });
  }
  void conv2d_patches(const float* x, int64_t T, int64_t F, int64_t C, int k, int s, int p,
                      int64_t t0, int64_t n_t, float* out) override {
    time("conv2d_patches", [&] { b_.conv2d_patches(x, T, F, C, k, s, p, t0, n_t, out); });
  }
  void depthwise_conv1d_causal(const float* x, int64_t ldx, int64_t T, int64_t C, const Weight& w,
                               float* out, int64_t ldo) override {
    time("depthwise_conv1d", [&] { b_.depthwise_conv1d_causal(x, ldx, T, C, w, out, ldo); });
  }
  void local_attention(const LocalAttentionArgs& a) override {
    time("local_attention", [&] { b_.local_attention(a); });
  }

 private:
  template <typename F>
  void time(const std::string& cat, F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    auto& e = t_[cat];
    e.first += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    e.second += 1;
  }

  // "model.language_model.layers.12.self_attn.q_proj.weight" → "linear self_attn.q_proj [nvfp4]"
  static std::string linear_name(const Weight& w) {
    std::string n = w.name;
    const size_t l = n.find("layers.");
    if (l != std::string::npos) {
      size_t e = l + 7;
      while (e < n.size() && n[e] >= '0' && n[e] <= '9') ++e;
      if (e < n.size() && n[e] == '.') n = n.substr(e + 1);
    }
    if (n.size() > 7 && n.compare(n.size() - 7, 7, ".weight") == 0) n.resize(n.size() - 7);
    return "linear " + n + (w.nvfp4() ? " [nvfp4]" : " [" + std::string(dtype_name(w.dtype)) + "]");
  }

  Backend& b_;
  std::map<std::string, std::pair<double, long>> t_;
};

}  // namespace fc::bench
