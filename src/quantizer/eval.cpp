#include "quantizer/eval.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/half.h"
#include "model/gemma4/model.h"
#include "quant/nvfp4.h"
#include "quantizer/calib.h"

namespace fc::quantizer {

namespace {

float scalar_f32(const TensorInfo& t) {
  FC_CHECK(t.dtype == DType::kF32 && t.numel == 1, "eval: ", t.name, " is not an F32 scalar");
  float v;
  std::memcpy(&v, t.data, 4);
  return v;
}

std::vector<float> dense_f32(const TensorInfo& t) {
  std::vector<float> v(t.numel);
  for (uint64_t i = 0; i < t.numel; ++i) {
    if (t.dtype == DType::kF32) {
      std::memcpy(&v[i], t.data + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * i, 2);
      v[i] = t.dtype == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
  return v;
}

// A quantized linear of the checkpoint under test, dequantized.
struct DenseLinear {
  std::vector<float> w;  // [rows, cols]
  int64_t rows = 0, cols = 0;
  std::vector<float> pqs;  // [cols] or empty
  float input_scale = 0.0f;
  Weight as_weight(const std::string& name) const {
    Weight W;
    W.data = w.data();
    W.dtype = DType::kF32;
    W.rows = rows;
    W.cols = cols;
    W.ld = cols;
    W.name = name;
    return W;
  }
};

class OverlayBackend final : public ForwardingBackend {
 public:
  OverlayBackend(Backend& inner, const Checkpoint& q, bool w4a4)
      : ForwardingBackend(inner), w4a4_(w4a4) {
    for (const TensorInfo* t : q.all()) {
      const std::string suf = ".weight_scale";
      if (t->name.size() > suf.size() &&
          t->name.compare(t->name.size() - suf.size(), suf.size(), suf) == 0) {
        load(q, t->name.substr(0, t->name.size() - suf.size()), *t);
      } else if ((t->dtype == DType::kBF16 || t->dtype == DType::kF16 || t->dtype == DType::kF32) &&
                 t->shape.size() == 1) {
        vectors_[t->name] = dense_f32(*t);
      }
    }
  }

  void linear(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y, int64_t ldy,
              bool accumulate) override {
    auto it = lin_.find(module_of(w.name));
    if (it == lin_.end()) return ForwardingBackend::linear(x, T, ldx, w, y, ldy, accumulate);
    const DenseLinear& d = it->second;
    FC_CHECK(d.cols == w.cols && d.rows == w.rows, "eval: ", w.name, " shape differs");
    const float* xin = x;
    int64_t ld = ldx;
    if (!d.pqs.empty() || w4a4_) {
      xbuf_.resize(static_cast<size_t>(T * d.cols));
      for (int64_t t = 0; t < T; ++t) {
        float* r = xbuf_.data() + t * d.cols;
        for (int64_t c = 0; c < d.cols; ++c)
          r[c] = x[t * ldx + c] * (d.pqs.empty() ? 1.0f : d.pqs[static_cast<size_t>(c)]);
        if (w4a4_) quant::activation_qdq(r, d.cols, d.input_scale, r);
      }
      xin = xbuf_.data();
      ld = d.cols;
    }
    ForwardingBackend::linear(xin, T, ld, d.as_weight(w.name), y, ldy, accumulate);
  }
  void rmsnorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const Weight* w, float eps,
               float* y, int64_t ldy) override {
    if (w) {
      auto it = vectors_.find(w->name);
      if (it != vectors_.end() && static_cast<int64_t>(it->second.size()) == w->cols) {
        Weight W = *w;
        W.data = it->second.data();
        W.dtype = DType::kF32;
        return ForwardingBackend::rmsnorm(x, rows, n, ldx, &W, eps, y, ldy);
      }
    }
    ForwardingBackend::rmsnorm(x, rows, n, ldx, w, eps, y, ldy);
  }
  void moe_experts(const float* x, int64_t ldx, int64_t T, const int32_t* idx, const float* weights,
                   int k, const Weight* gate, const Weight* up, const Weight* down, int E,
                   float* out, int64_t ldo) override {
    std::vector<Weight> g(gate, gate + E), u(up, up + E), d(down, down + E);
    for (int e = 0; e < E; ++e) {
      swap_expert(g[static_cast<size_t>(e)], gate[0].name, e, "gate_proj");
      swap_expert(u[static_cast<size_t>(e)], gate[0].name, e, "up_proj");
      swap_expert(d[static_cast<size_t>(e)], gate[0].name, e, "down_proj");
    }
    ForwardingBackend::moe_experts(x, ldx, T, idx, weights, k, g.data(), u.data(), d.data(), E, out,
                                   ldo);
  }
  size_t n_linears() const { return lin_.size(); }

 private:
  void swap_expert(Weight& w, const std::string& any, int e, const char* proj) {
    auto it = lin_.find(expert_module(any, e, proj));
    if (it != lin_.end()) w = it->second.as_weight(it->first);
  }
  void load(const Checkpoint& q, const std::string& m, const TensorInfo& scales) {
    const TensorInfo* codes = q.find(m + ".weight_packed");
    const bool ct = codes != nullptr;
    if (!codes) codes = q.find(m + ".weight");
    if (!codes || codes->dtype != DType::kU8) return;  // e.g. an FP8 weight_scale elsewhere
    quant::Nvfp4Matrix mat;
    mat.packed = codes->data;
    mat.scales = scales.data;
    mat.rows = codes->shape[0];
    mat.cols = codes->shape[1] * 2;
    mat.ld = codes->shape[1];
    mat.scale_ld = scales.shape[1];
    DenseLinear d;
    if (ct) {
      mat.global_scale = 1.0f / scalar_f32(q.get(m + ".weight_global_scale"));
      if (const TensorInfo* a = q.find(m + ".input_global_scale"))
        d.input_scale = 1.0f / scalar_f32(*a);
    } else {
      mat.global_scale = scalar_f32(q.get(m + ".weight_scale_2"));
      if (const TensorInfo* a = q.find(m + ".input_scale")) d.input_scale = scalar_f32(*a);
      if (const TensorInfo* p = q.find(m + ".pre_quant_scale")) d.pqs = dense_f32(*p);
    }
    d.rows = mat.rows;
    d.cols = mat.cols;
    d.w.resize(static_cast<size_t>(d.rows * d.cols));
    for (int64_t r = 0; r < d.rows; ++r) quant::dequantize_row(mat, r, d.w.data() + r * d.cols);
    lin_[m] = std::move(d);
  }

  bool w4a4_;
  std::map<std::string, DenseLinear> lin_;
  std::map<std::string, std::vector<float>> vectors_;
  std::vector<float> xbuf_;
};

gemma4::ModelOptions model_options(const gemma4::Config& cfg, const Checkpoint& ck) {
  gemma4::ModelOptions mo;
  const TensorInfo* emb = ck.find(cfg.tensor_prefix + "embed_tokens.weight");
  mo.bf16_embed_scale = emb && emb->dtype == DType::kBF16;
  return mo;
}

}  // namespace

KlResult kl_divergence(const std::string& base_dir, const std::string& quant_dir,
                       const std::vector<std::vector<int32_t>>& seqs, ThreadPool& pool,
                       const KlOptions& opt) {
  cpu::CpuBackend cpu(pool);
  const gemma4::Config cfg = gemma4::load_config(base_dir);
  std::shared_ptr<const Checkpoint> base = Checkpoint::open_dir(base_dir);
  std::vector<float> p_logits, q_logits;
  {
    gemma4::Model model(cfg, base, cpu, model_options(cfg, *base));
    p_logits = all_logits(model, cpu, seqs, opt.progress, "eval base");
  }
  std::shared_ptr<const Checkpoint> qck = Checkpoint::open_dir(quant_dir);
  if (opt.use_loader) {
    const gemma4::Config qcfg = gemma4::load_config(quant_dir);
    gemma4::Model model(qcfg, qck, cpu, model_options(qcfg, *qck));
    q_logits = all_logits(model, cpu, seqs, opt.progress, "eval quantized (loader)");
  } else {
    OverlayBackend ov(cpu, *qck, opt.w4a4);
    FC_CHECK(ov.n_linears() > 0, quant_dir, " holds no NVFP4 linear");
    gemma4::Model model(cfg, base, ov, model_options(cfg, *base));
    q_logits = all_logits(model, ov, seqs, opt.progress, "eval quantized");
  }
  FC_CHECK(q_logits.size() == p_logits.size(), "eval: logit counts differ");
  const int64_t V = cfg.vocab_size;
  return compare_logits(p_logits.data(), q_logits.data(), static_cast<int64_t>(p_logits.size()) / V,
                        V);
}

KlResult compare_logits(const float* p_logits, const float* q_logits, int64_t tokens, int64_t V) {
  KlResult r;
  r.tokens = tokens;
  int64_t agree = 0;
  for (int64_t t = 0; t < r.tokens; ++t) {
    const float* p = p_logits + t * V;
    const float* q = q_logits + t * V;
    const float pm = *std::max_element(p, p + V), qm = *std::max_element(q, q + V);
    double zp = 0.0, zq = 0.0;
    for (int64_t i = 0; i < V; ++i) {
      zp += std::exp(static_cast<double>(p[i]) - pm);
      zq += std::exp(static_cast<double>(q[i]) - qm);
    }
    const double lzp = std::log(zp) + pm, lzq = std::log(zq) + qm;
    double kl = 0.0;
    for (int64_t i = 0; i < V; ++i) {
      const double lp = p[i] - lzp, lq = q[i] - lzq;
      kl += std::exp(lp) * (lp - lq);
    }
    r.mean_kl += kl;
    r.max_kl = std::max(r.max_kl, kl);
    agree += (std::max_element(p, p + V) - p) == (std::max_element(q, q + V) - q);
  }
  if (r.tokens > 0) {
    r.mean_kl /= static_cast<double>(r.tokens);
    r.top1_agree = static_cast<double>(agree) / static_cast<double>(r.tokens);
  }
  return r;
}

}  // namespace fc::quantizer
