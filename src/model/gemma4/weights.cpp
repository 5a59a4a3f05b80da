#include "model/gemma4/weights.h"

#include <cmath>
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/half.h"
#include "core/log.h"
#include "quant/nvfp4.h"

namespace fc::gemma4 {
namespace {

bool is_float_dtype(DType t) {
  return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16;
}

float read_float(const TensorInfo& t, size_t i = 0) {
  if (t.dtype == DType::kF32) {
    float v;
    std::memcpy(&v, t.data + i * 4, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, t.data + i * 2, 2);
  return t.dtype == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

class Binder {
 public:
  Binder(const Config& c, const Checkpoint& ckpt, Backend& be, const LoadOptions& opt, Weights& out)
      : c_(c), ckpt_(ckpt), be_(be), opt_(opt), out_(out) {}

  // Binds `name` (relative to the text prefix unless absolute) with the expected shape; a 3-D
  // [A, B, C] tensor is viewed as the matrix [A*B, C].
  Weight get(const std::string& rel, std::vector<int64_t> shape, bool absolute = false) {
    const std::string name = absolute ? rel : c_.tensor_prefix + rel;
    const TensorInfo* t = ckpt_.find(name);
    if (!t) fail("missing tensor ", name, " in ", ckpt_.dir(), " (required by the config)");
    return bind(*t, std::move(shape));
  }
  Weight opt(const std::string& rel, std::vector<int64_t> shape) {
    const TensorInfo* t = ckpt_.find(c_.tensor_prefix + rel);
    return t ? bind(*t, std::move(shape)) : Weight{};
  }
  float scalar(const std::string& rel) {
    const Weight w = get(rel, {1});  // validates and marks it; w.data may be device memory
    const void* host = ckpt_.find(c_.tensor_prefix + rel)->data;  // so read the mapping
    float v = 0;
    if (w.dtype == DType::kF32)
      std::memcpy(&v, host, 4);
    else if (w.dtype == DType::kBF16)
      v = bf16_to_f32(*static_cast<const uint16_t*>(host));
    else
      v = f16_to_f32(*static_cast<const uint16_t*>(host));
    return v;
  }

  // A linear module of logical shape [N, K] (`rel` relative to the text prefix unless absolute):
  // dense `.weight`, or NVFP4 as the quantization config says (spec weight-formats §2.2, §3.1).
  Weight linear(const std::string& rel, int64_t N, int64_t K, bool absolute = false) {
    const std::string module = absolute ? rel : c_.tensor_prefix + rel;
    const quant::LinearScheme sc = c_.quant.scheme_for(module);
    if (sc.nvfp4) return nvfp4(module, N, K, sc);
    for (const char* q : {".weight_packed", ".weight_scale", ".weight_scale_2"})
      if (ckpt_.find(module + q))
        fail("tensor ", module, q, " in ", ckpt_.dir(), ": module ", module, " is quantized but ",
             c_.quant.quantized() ? c_.quant.source : "config.json",
             c_.quant.quantized() ? " excludes it" : " has no quantization description");
    return get(module + ".weight", {N, K}, true);
  }

  // FP8 KV-cache scales of an attention module (spec weight-formats §2.9, §3.2, §5).
  void kv_scales(const std::string& attn, LayerWeights& lw) {
    auto find = [&](std::initializer_list<const char*> names) -> const TensorInfo* {
      const TensorInfo* found = nullptr;
      for (const char* n : names)
        if (const TensorInfo* t = ckpt_.find(attn + n)) {
          mark(*t);
          if (!found) found = t;
        }
      return found;
    };
    const TensorInfo* k =
        find({".k_proj.k_scale", ".k_scale", ".attn.k_scale", ".k_proj.output_scale"});
    const TensorInfo* v =
        find({".v_proj.v_scale", ".v_scale", ".attn.v_scale", ".v_proj.output_scale"});
    if (const TensorInfo* kv = find({".kv_scale", ".attn.kv_scale"})) {
      if (!k) k = kv;
      if (!v) v = kv;
    }
    if (!k && !v) return;
    lw.has_kv_scales = true;
    lw.k_scale = k ? kv_scale_value(*k) : 1.0f;
    lw.v_scale = v ? kv_scale_value(*v) : 1.0f;
  }

  const std::set<std::string>& used() const { return used_; }
  int64_t params = 0;

 private:
  void mark(const TensorInfo& t) { used_.insert(t.name); }

  const TensorInfo& need(const std::string& name, const std::string& why) {
    const TensorInfo* t = ckpt_.find(name);
    if (!t) fail("missing tensor ", name, " in ", ckpt_.dir(), " (", why, ")");
    mark(*t);
    return *t;
  }

  // A per-tensor scale: 0-d or [1], F32 (BF16/F16 tolerated).
  float scalar_of(const TensorInfo& t) {
    if (!(t.shape.empty() || t.shape == std::vector<int64_t>{1}))
      fail("tensor ", t.name, " in ", t.file, " has shape ", shape_str(t.shape),
           ", expected a scalar ([] or [1])");
    if (!is_float_dtype(t.dtype))
      fail("tensor ", t.name, " in ", t.file, " has dtype ", dtype_name(t.dtype), ", expected F32");
    return read_float(t);
  }

  // A scale that must be finite and positive; bad values are rejected or replaced by `fallback`.
  float checked_scale(const TensorInfo& t, float v, float fallback, const char* effect) {
    if (std::isfinite(v) && v > 0.0f) return v;
    if (!opt_.zero_bad_scales)
      fail("tensor ", t.name, " in ", t.file, " holds the invalid scale ", v,
           " (must be finite and > 0); rerun with --zero-nan-scales to load it with ", effect);
    log_line(LogLevel::kWarn, str_cat("tensor ", t.name, " holds the invalid scale ", v, "; ",
                                      effect, " (--zero-nan-scales)"));
    return fallback;
  }

  float kv_scale_value(const TensorInfo& t) {
    return checked_scale(t, scalar_of(t), 1.0f, "a KV scale of 1.0");
  }

  Weight nvfp4(const std::string& m, int64_t N, int64_t K, const quant::LinearScheme& sc) {
    const bool ct = c_.quant.format == quant::Format::kCompressedTensors;
    const std::string why = "module " + m + " is NVFP4 per " + c_.quant.source;
    if (K % 16 != 0)
      fail("module ", m, ": in_features ", K, " is not a multiple of 16, the NVFP4 block size (",
           c_.quant.source, ")");
    const TensorInfo& packed = need(m + (ct ? ".weight_packed" : ".weight"), why);
    if (packed.dtype != DType::kU8)
      fail("tensor ", packed.name, " in ", packed.file, " has dtype ", dtype_name(packed.dtype),
           "; ", why, ", which stores U8 packed E2M1 codes");
    if (packed.shape != std::vector<int64_t>{N, K / 2})
      fail("tensor ", packed.name, " in ", packed.file, " has shape ", shape_str(packed.shape),
           ", expected ", shape_str({N, K / 2}), " (", N, " rows of ", K, " packed 4-bit values)");
    const TensorInfo& scale = need(m + ".weight_scale", why);
    if (scale.dtype != DType::kF8_E4M3)
      fail("tensor ", scale.name, " in ", scale.file, " has dtype ", dtype_name(scale.dtype),
           ", expected F8_E4M3 block scales");
    if (scale.shape != std::vector<int64_t>{N, K / 16})
      fail("tensor ", scale.name, " in ", scale.file, " has shape ", shape_str(scale.shape),
           ", expected ", shape_str({N, K / 16}), " (one scale per 16 inputs)");
    Weight w;
    w.format = WeightFormat::kNvfp4;
    w.dtype = DType::kU8;
    w.data = packed.data;
    w.name = packed.name;
    w.rows = N;
    w.cols = K;
    w.ld = K / 2;
    w.scale_ld = K / 16;
    w.block_scale = checked_block_scales(scale);
    if (ct) {
      const TensorInfo& g = need(m + ".weight_global_scale", why);
      // CT stores the reciprocal: W = e2m1 · s / weight_global_scale (spec §3.1).
      w.global_scale = 1.0f / checked_scale(g, scalar_of(g), INFINITY, "the weight zeroed");
      if (const TensorInfo* a = ckpt_.find(m + ".input_global_scale")) {
        mark(*a);
        w.input_scale = 1.0f / checked_scale(*a, scalar_of(*a), INFINITY, "no activation scale");
      } else if (sc.input_scale) {
        need(m + ".input_global_scale", why + " with quantized input activations");
      }
    } else {
      const TensorInfo& g = need(m + ".weight_scale_2", why);
      const float s2 = scalar_of(g);
      w.global_scale = s2 == 0.0f ? 0.0f : checked_scale(g, s2, 0.0f, "the weight zeroed");
      if (const TensorInfo* a = ckpt_.find(m + ".input_scale")) {
        mark(*a);
        w.input_scale = checked_scale(*a, scalar_of(*a), 0.0f, "no activation scale");
      } else if (sc.input_scale) {
        need(m + ".input_scale", why + " (quant_algo " + c_.quant.quant_algo + ")");
      }
      if (const TensorInfo* p = ckpt_.find(m + ".pre_quant_scale")) {
        mark(*p);
        if (!is_float_dtype(p->dtype) || p->shape != std::vector<int64_t>{K})
          fail("tensor ", p->name, " in ", p->file, " has ", dtype_name(p->dtype), " ",
               shape_str(p->shape), ", expected a float vector ", shape_str({K}));
        w.pre_quant_scale = checked_pqs(*p);
        w.pqs_dtype = p->dtype;
      }
    }
    params += N * K;
    ++out_.nvfp4_linears;
    return be_.upload(w);
  }

  // FP8 block scales; NaN bytes (0x7F / 0xFF) rejected or zeroed into a host copy.
  const uint8_t* checked_block_scales(const TensorInfo& t) {
    int64_t bad = 0, first = -1;
    for (uint64_t i = 0; i < t.nbytes; ++i)
      if ((t.data[i] & 0x7F) == 0x7F && (bad++ == 0)) first = static_cast<int64_t>(i);
    if (bad == 0) return t.data;
    const int64_t cols = t.shape[1];
    if (!opt_.zero_bad_scales)
      fail("tensor ", t.name, " in ", t.file, " has ", bad, " NaN FP8 block scale(s), first at [",
           first / cols, ", ", first % cols,
           "]; rerun with --zero-nan-scales to load it with those blocks zeroed");
    log_line(LogLevel::kWarn, str_cat("tensor ", t.name, ": ", bad,
                                      " NaN FP8 block scale(s) zeroed (--zero-nan-scales)"));
    std::vector<uint8_t> copy(t.data, t.data + t.nbytes);
    for (uint8_t& b : copy)
      if ((b & 0x7F) == 0x7F) b = 0;
    out_.owned.push_back(std::move(copy));
    return out_.owned.back().data();
  }

  const void* checked_pqs(const TensorInfo& t) {
    int64_t bad = 0;
    for (uint64_t i = 0; i < t.numel; ++i)
      if (!std::isfinite(read_float(t, i))) ++bad;
    if (bad == 0) return t.data;
    if (!opt_.zero_bad_scales)
      fail(
          "tensor ", t.name, " in ", t.file, " has ", bad,
          " non-finite value(s); rerun with --zero-nan-scales to load it with those inputs zeroed");
    log_line(LogLevel::kWarn, str_cat("tensor ", t.name, ": ", bad,
                                      " non-finite value(s) zeroed (--zero-nan-scales)"));
    std::vector<uint8_t> copy(t.data, t.data + t.nbytes);
    const size_t es = static_cast<size_t>(dtype_bits(t.dtype) / 8);
    for (uint64_t i = 0; i < t.numel; ++i)
      if (!std::isfinite(read_float(t, i))) std::memset(copy.data() + i * es, 0, es);
    out_.owned.push_back(std::move(copy));
    return out_.owned.back().data();
  }

  Weight bind(const TensorInfo& t, std::vector<int64_t> shape) {
    if (!is_float_dtype(t.dtype))
      fail("tensor ", t.name, " in ", t.file, " has dtype ", dtype_name(t.dtype),
           "; dense weights must be F32, BF16 or F16",
           t.dtype == DType::kU8 ? " (packed NVFP4 without a quantization config?)" : "");
    // [1] scalars may also be stored 0-d.
    const bool scalar_ok = shape == std::vector<int64_t>{1} && t.shape.empty();
    if (t.shape != shape && !scalar_ok)
      fail("tensor ", t.name, " in ", t.file, " has shape ", shape_str(t.shape), ", expected ",
           shape_str(shape));
    mark(t);
    params += static_cast<int64_t>(t.numel);
    Weight w;
    w.data = t.data;
    w.dtype = t.dtype;
    w.name = t.name;
    if (shape.size() <= 1) {
      w.rows = 1;
      w.cols = shape.empty() ? 1 : shape[0];
    } else {
      w.cols = shape.back();
      w.rows = 1;
      for (size_t i = 0; i + 1 < shape.size(); ++i) w.rows *= shape[i];
    }
    w.ld = w.cols;
    return be_.upload(w);
  }

  const Config& c_;
  const Checkpoint& ckpt_;
  Backend& be_;
  const LoadOptions& opt_;
  Weights& out_;
  std::set<std::string> used_;
};

void bind_experts(const Config& c, const Checkpoint& ckpt, Binder& b, const std::string& p,
                  LayerWeights& lw) {
  const int64_t E = c.num_experts, Im = c.moe_intermediate_size, H = c.hidden_size;
  if (ckpt.find(c.tensor_prefix + p + "experts.gate_up_proj")) {
    // HF's fused 3-D parameters: gate = rows [0, I), up = rows [I, 2I) of each expert.
    const Weight gu = b.get(p + "experts.gate_up_proj", {E, 2 * Im, H});
    const Weight dn = b.get(p + "experts.down_proj", {E, H, Im});
    for (int64_t e = 0; e < E; ++e) {
      lw.expert_gate.push_back(gu.slice_rows(e * 2 * Im, Im));
      lw.expert_up.push_back(gu.slice_rows(e * 2 * Im + Im, Im));
      lw.expert_down.push_back(dn.slice_rows(e * H, H));
    }
    return;
  }
  for (int64_t e = 0; e < E; ++e) {
    const std::string x = p + "experts." + std::to_string(e) + ".";
    lw.expert_gate.push_back(b.linear(x + "gate_proj", Im, H));
    lw.expert_up.push_back(b.linear(x + "up_proj", Im, H));
    lw.expert_down.push_back(b.linear(x + "down_proj", H, Im));
  }
}

}  // namespace

Weights bind_weights(const Config& c, const Checkpoint& ckpt, Backend& backend,
                     const LoadOptions& options) {
  Weights w;
  Binder b(c, ckpt, backend, options, w);
  const int64_t H = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
  const int64_t P = c.hidden_size_per_layer_input, Hq = c.num_attention_heads;
  w.embed_tokens = b.get("embed_tokens.weight", {V, H});
  w.norm = b.get("norm.weight", {H});
  const bool head = ckpt.find("lm_head.weight") || ckpt.find("lm_head.weight_packed");
  w.lm_head = (head && !c.tie_word_embeddings) ? b.linear("lm_head", V, H, true) : w.embed_tokens;
  if (!c.tie_word_embeddings && !head)
    fail("missing tensor lm_head.weight in ", ckpt.dir(), " (tie_word_embeddings is false)");
  if (P > 0) {
    w.embed_tokens_per_layer =
        b.get("embed_tokens_per_layer.weight", {c.vocab_size_per_layer_input, L * P});
    w.per_layer_model_projection = b.linear("per_layer_model_projection", L * P, H);
    w.per_layer_projection_norm = b.get("per_layer_projection_norm.weight", {P});
  }
  for (int i = 0; i < L; ++i) {
    const LayerSpec& s = c.layers[static_cast<size_t>(i)];
    const std::string p = "layers." + std::to_string(i) + ".";
    const int64_t D = s.head_dim, Hkv = s.num_kv_heads, I = s.intermediate;
    LayerWeights lw;
    lw.input_layernorm = b.get(p + "input_layernorm.weight", {H});
    lw.post_attention_layernorm = b.get(p + "post_attention_layernorm.weight", {H});
    lw.pre_feedforward_layernorm = b.get(p + "pre_feedforward_layernorm.weight", {H});
    lw.post_feedforward_layernorm = b.get(p + "post_feedforward_layernorm.weight", {H});
    lw.q_proj = b.linear(p + "self_attn.q_proj", Hq * D, H);
    lw.q_norm = b.get(p + "self_attn.q_norm.weight", {D});
    lw.o_proj = b.linear(p + "self_attn.o_proj", H, Hq * D);
    if (!s.kv_shared) {
      lw.k_proj = b.linear(p + "self_attn.k_proj", Hkv * D, H);
      lw.k_norm = b.get(p + "self_attn.k_norm.weight", {D});
      if (s.has_v_proj) lw.v_proj = b.linear(p + "self_attn.v_proj", Hkv * D, H);
    }
    b.kv_scales(c.tensor_prefix + p + "self_attn", lw);
    lw.gate_proj = b.linear(p + "mlp.gate_proj", I, H);
    lw.up_proj = b.linear(p + "mlp.up_proj", I, H);
    lw.down_proj = b.linear(p + "mlp.down_proj", H, I);
    lw.layer_scalar = b.scalar(p + "layer_scalar");
    if (P > 0) {
      lw.per_layer_input_gate = b.linear(p + "per_layer_input_gate", P, H);
      lw.per_layer_projection = b.linear(p + "per_layer_projection", H, P);
      lw.post_per_layer_input_norm = b.get(p + "post_per_layer_input_norm.weight", {H});
    }
    if (c.enable_moe_block) {
      const int64_t E = c.num_experts;
      lw.router_proj = b.linear(p + "router.proj", E, H);
      lw.router_scale = b.get(p + "router.scale", {H});
      lw.router_per_expert_scale = b.get(p + "router.per_expert_scale", {E});
      bind_experts(c, ckpt, b, p, lw);
      lw.pre_feedforward_layernorm_2 = b.get(p + "pre_feedforward_layernorm_2.weight", {H});
      lw.post_feedforward_layernorm_1 = b.get(p + "post_feedforward_layernorm_1.weight", {H});
      lw.post_feedforward_layernorm_2 = b.get(p + "post_feedforward_layernorm_2.weight", {H});
    }
    w.layers.push_back(std::move(lw));
  }
  // Text-model tensors left over (e.g. unused K/V of KV-shared layers, which HF also ignores).
  for (const TensorInfo* t : ckpt.all())
    if (t->name.rfind(c.tensor_prefix, 0) == 0 && !b.used().count(t->name)) {
      const std::string rest = t->name.substr(c.tensor_prefix.size());
      if (rest.rfind("vision", 0) == 0 || rest.rfind("audio", 0) == 0 ||
          rest.rfind("embed_vision", 0) == 0 || rest.rfind("embed_audio", 0) == 0 ||
          t->name.rfind("model.vision_tower", 0) == 0 || t->name.rfind("model.audio_tower", 0) == 0)
        continue;
      w.unused.push_back(t->name);
    }
  w.parameter_count = b.params;
  return w;
}

}  // namespace fc::gemma4
