// What one decode step of a Gemma 4 model must read from memory: the weight bytes (every matrix
// of every layer, the PLE projection and the LM head; embedding tables one row each) and the KV
// cache bytes at a given context. The benchmarks divide these by the step time to get achieved
// bytes/s, compared with the bandwidth measured in the same run.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/dtype.h"
#include "model/gemma4/model.h"

namespace fc::bench {

inline int64_t bytes_of(const Weight& w) {
  return w.empty() ? 0 : w.bytes();
}

// Weight bytes one decode token streams (MoE: top-k of E experts per token).
inline int64_t decode_weight_bytes(const gemma4::Model& m) {
  const gemma4::Weights& w = m.weights();
  const gemma4::Config& c = m.config();
  int64_t b = bytes_of(w.lm_head) + bytes_of(w.per_layer_model_projection) + bytes_of(w.norm);
  b += bytes_of(w.embed_tokens) / std::max<int64_t>(1, w.embed_tokens.rows);
  if (!w.embed_tokens_per_layer.empty())
    b += bytes_of(w.embed_tokens_per_layer) / w.embed_tokens_per_layer.rows;
  for (const gemma4::LayerWeights& l : w.layers) {
    for (const Weight* x :
         {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj,
          &l.per_layer_input_gate, &l.per_layer_projection, &l.router_proj})
      b += bytes_of(*x);
    if (c.enable_moe_block)
      for (size_t e = 0; e < l.expert_gate.size(); ++e)
        b += (bytes_of(l.expert_gate[e]) + bytes_of(l.expert_up[e]) + bytes_of(l.expert_down[e])) *
             c.top_k_experts / c.num_experts;
  }
  return b;
}

// decode_weight_bytes by part, plus what it leaves out (the small norm vectors, counted here).
struct DecodeBytes {
  int64_t lm_head = 0, linears = 0, ple_projection = 0, embedding_rows = 0, norms = 0;
};

inline DecodeBytes decode_bytes_by_part(const gemma4::Model& m) {
  const gemma4::Weights& w = m.weights();
  const gemma4::Config& c = m.config();
  DecodeBytes d;
  d.lm_head = bytes_of(w.lm_head);
  d.ple_projection = bytes_of(w.per_layer_model_projection);
  d.embedding_rows = bytes_of(w.embed_tokens) / std::max<int64_t>(1, w.embed_tokens.rows);
  if (!w.embed_tokens_per_layer.empty())
    d.embedding_rows += bytes_of(w.embed_tokens_per_layer) / w.embed_tokens_per_layer.rows;
  d.norms = bytes_of(w.norm) + bytes_of(w.per_layer_projection_norm);
  for (const gemma4::LayerWeights& l : w.layers) {
    for (const Weight* x :
         {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj,
          &l.per_layer_input_gate, &l.per_layer_projection, &l.router_proj})
      d.linears += bytes_of(*x);
    if (c.enable_moe_block)
      for (size_t e = 0; e < l.expert_gate.size(); ++e)
        d.linears +=
            (bytes_of(l.expert_gate[e]) + bytes_of(l.expert_up[e]) + bytes_of(l.expert_down[e])) *
            c.top_k_experts / c.num_experts;
    for (const Weight* x :
         {&l.input_layernorm, &l.post_attention_layernorm, &l.pre_feedforward_layernorm,
          &l.post_feedforward_layernorm, &l.q_norm, &l.k_norm, &l.post_per_layer_input_norm,
          &l.router_scale, &l.pre_feedforward_layernorm_2, &l.post_feedforward_layernorm_1,
          &l.post_feedforward_layernorm_2})
      d.norms += bytes_of(*x);
  }
  return d;
}

// KV bytes one sequence's decode token reads at `context` cached positions: every layer that owns
// K/V reads K and V of min(context, window) positions (KV-shared layers read their source's
// arrays again, which a cache may or may not absorb: counted once here).
inline int64_t decode_kv_bytes(const gemma4::Model& m, int64_t context, DType kv_dtype) {
  int64_t b = 0;
  const int64_t esz = dtype_bits(kv_dtype) / 8;
  for (const kv::GroupLayout& g : m.kv_layout()) {
    const int64_t n = g.sliding_window > 0 ? std::min<int64_t>(context, g.sliding_window) : context;
    b += static_cast<int64_t>(g.layers.size()) * n * g.num_kv_heads * g.head_dim * 2 * esz;
  }
  return b;
}

}  // namespace fc::bench
