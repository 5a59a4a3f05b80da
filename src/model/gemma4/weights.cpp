#include "model/gemma4/weights.h"

#include "model/gemma4/binder.h"

#include <cmath>
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/half.h"
#include "core/log.h"
#include "quant/nvfp4.h"

namespace fc::gemma4 {
namespace {

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
  Binder b(c.quant, c.tensor_prefix, ckpt, backend, options, w.owned, w.nvfp4_linears);
  const int64_t H = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
  const int64_t P = c.hidden_size_per_layer_input, Hq = c.num_attention_heads;
  const bool head = ckpt.find("lm_head.weight") || ckpt.find("lm_head.weight_packed");
  const bool untied = head && !c.tie_word_embeddings;  // the table is then only gathered
  w.embed_tokens =
      untied ? b.get_rows("embed_tokens.weight", {V, H}) : b.get("embed_tokens.weight", {V, H});
  w.norm = b.get("norm.weight", {H});
  w.lm_head = untied ? b.linear("lm_head", V, H, true) : w.embed_tokens;
  if (!c.tie_word_embeddings && !head)
    fail("missing tensor lm_head.weight in ", ckpt.dir(), " (tie_word_embeddings is false)");
  if (P > 0) {
    w.embed_tokens_per_layer =
        b.get_rows("embed_tokens_per_layer.weight", {c.vocab_size_per_layer_input, L * P});
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
