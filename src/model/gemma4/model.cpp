#include "model/gemma4/model.h"

#include "backend/scratch.h"
#include "model/gemma4/model_internal.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"

namespace fc::gemma4 {

std::vector<float> rope_inv_freq(const RopeConfig& r, int head_dim) {
  const int half = head_dim / 2;
  std::vector<float> f(static_cast<size_t>(half), 0.0f);
  const float base = static_cast<float>(r.theta);
  const int rotated =
      r.type == "proportional" ? static_cast<int>(r.partial_rotary_factor * head_dim / 2.0) : half;
  for (int j = 0; j < std::min(rotated, half); ++j)
    f[static_cast<size_t>(j)] =
        1.0f / std::pow(base, static_cast<float>(2 * j) / static_cast<float>(head_dim));
  if (r.type == "proportional")
    for (float& x : f) x /= static_cast<float>(r.factor);
  return f;
}

Model::Model(Config config, std::shared_ptr<const Checkpoint> ckpt, Backend& backend,
             ModelOptions options)
    : cfg_(std::move(config)), ckpt_(std::move(ckpt)), be_(backend), opt_(options) {
  w_ = bind_weights(cfg_, *ckpt_, be_, opt_.load);
  w_.lm_head = make_lm_head(opt_.lm_head_dtype, w_.lm_head, *ckpt_, be_, w_.owned);
  for (LayerType t : {LayerType::kSliding, LayerType::kFull}) {
    kv::GroupLayout g;
    g.sliding_window = t == LayerType::kSliding ? cfg_.sliding_window : 0;
    for (int i = 0; i < cfg_.num_hidden_layers; ++i) {
      const LayerSpec& s = cfg_.layers[static_cast<size_t>(i)];
      if (s.type != t || s.kv_shared) continue;
      g.num_kv_heads = s.num_kv_heads;
      g.head_dim = s.head_dim;
      g.layers.push_back(i);
    }
    for (int i = 0; i < cfg_.num_hidden_layers; ++i) {
      const LayerSpec& s = cfg_.layers[static_cast<size_t>(i)];
      if (s.type == t && !s.kv_shared &&
          (s.num_kv_heads != g.num_kv_heads || s.head_dim != g.head_dim))
        fail("layer ", i, ": every ", layer_type_name(t),
             " layer must have the same KV geometry (one KV group per layer type)");
    }
    if (!g.layers.empty()) kv_layout_.push_back(std::move(g));
  }
  inv_freq_sliding_ = rope_inv_freq(cfg_.rope_sliding, cfg_.head_dim);
  inv_freq_full_ = rope_inv_freq(cfg_.rope_full, cfg_.global_head_dim);
  // Full layers' head_dim may come from per_layer_config; use the first full layer's.
  for (const LayerSpec& s : cfg_.layers) {
    if (s.type == LayerType::kFull) {
      inv_freq_full_ = rope_inv_freq(cfg_.rope_full, s.head_dim);
      break;
    }
  }
  for (const LayerSpec& s : cfg_.layers) {
    if (s.type == LayerType::kSliding) {
      inv_freq_sliding_ = rope_inv_freq(cfg_.rope_sliding, s.head_dim);
      break;
    }
  }
  for (int t = 0; t < 2; ++t) {
    const std::vector<float>& f = t == 0 ? inv_freq_sliding_ : inv_freq_full_;
    inv_freq_dev_[t] = static_cast<float*>(be_.alloc(f.size() * sizeof(float)));
    be_.to_device(inv_freq_dev_[t], f.data(), f.size() * sizeof(float));
  }
  scratch_ = std::make_unique<DeviceScratch>(be_);
}

Model::~Model() {
  if (graphs_)
    for (auto& [key, e] : graphs_->entries)
      if (e->graph) be_.drop_graph(e->graph);
  for (float* p : inv_freq_dev_)
    if (p) be_.free(p);
}

Model::Outputs Model::compute(const Plan& p, const DeviceInputs& in, kv::KVStorage& kv,
                              DeviceScratch& scratch, bool recording, ForwardOutput& out) {
  const Config& c = cfg_;
  const int64_t H = c.hidden_size, L = c.num_hidden_layers, P = c.hidden_size_per_layer_input;
  const int64_t Hq = c.num_attention_heads, V = c.vocab_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const int n_seqs = static_cast<int>(p.q_begin.size());  // padding sequences included
  const int B = kv.block_size();
  const int64_t T = p.T;

  // ---- Device buffers. ----
  int64_t max_q = 0, max_kv = 0, max_i = 0;
  for (const LayerSpec& s : c.layers) {
    max_q = std::max<int64_t>(max_q, Hq * s.head_dim);
    max_kv = std::max<int64_t>(max_kv, int64_t{s.num_kv_heads} * s.head_dim);
    max_i = std::max<int64_t>(max_i, s.intermediate);
  }
  if (c.enable_moe_block) max_i = std::max<int64_t>(max_i, c.num_experts);
  auto buf = [&](int64_t n_floats) { return scratch.next_f32(n_floats); };
  float* h = buf(T * H);                          // residual stream [T, H]
  float* x = buf(T * H);                          // normed input [T, H]
  float* a = buf(T * H);                          // block output [T, H]
  float* q = buf(T * max_q);                      // [T, Hq, D]
  float* k = buf(T * max_kv);                     // [T, Hkv, D]
  float* v = buf(T * max_kv);                     // [T, Hkv, D]
  float* att = buf(T * max_q);                    // attention output [T, Hq, D]
  float* g1 = buf(T * max_i);                     // MLP gate / router logits
  float* u1 = buf(T * max_i);                     // MLP up
  float* m2 = buf(T * H);                         // MoE branch [T, H]
  float* ple = P > 0 ? buf(T * L * P) : nullptr;  // per-layer inputs [T, L, P]
  float* ple_tmp = P > 0 ? buf(T * L * P) : nullptr;
  int32_t* moe_idx = nullptr;
  float* moe_w = nullptr;
  if (c.enable_moe_block) {
    moe_idx = scratch.next_i32(T * c.top_k_experts);
    moe_w = buf(T * c.top_k_experts);
  }
  Outputs o;
  o.h = h;
  // Captured residuals: recorded steps copy the whole [T, H] state on the device (read back after
  // the replay); eager steps copy the hidden rows to the host at once.
  if (recording)
    for (size_t ci = 0; ci < p.capture_layers.size(); ++ci) o.captured.push_back(buf(T * H));
  else
    out.captured.assign(p.capture_layers.size(), {});
  auto capture_layer = [&](int layer, const float* src) {
    for (size_t ci = 0; ci < p.capture_layers.size(); ++ci) {
      if (p.capture_layers[ci] != layer) continue;
      if (recording) {
        be_.copy(o.captured[ci], src, static_cast<size_t>(T * H) * 4);
        continue;
      }
      std::vector<float>& dst = out.captured[ci];
      dst.resize(p.hidden_rows.size() * static_cast<size_t>(H));
      for (size_t r = 0; r < p.hidden_rows.size(); ++r)
        be_.to_host(dst.data() + r * static_cast<size_t>(H), src + p.hidden_rows[r] * H,
                    static_cast<size_t>(H) * 4);
    }
  };
  int32_t* d_ids = in.ids;
  int32_t* d_pos = in.pos;

  // ---- Embeddings (§4.1): e = E[id] * sqrt(H), the scale cast as HF's run dtype would. ----
  auto embed_scale = [&](double s) {
    return opt_.bf16_embed_scale ? round_bf16(static_cast<float>(s)) : static_cast<float>(s);
  };
  be_.embed(w_.embed_tokens, d_ids, T, embed_scale(std::sqrt(static_cast<double>(H))), h, H);
  // Multimodal merge (§4.3): soft tokens replace their rows, unscaled (device-to-device from the
  // uploaded encoder output); the context part of PLE below then reads the merged rows, the
  // token part the pad id that make_plan put in place of each placeholder.
  for (const Plan::SoftRows& sr : p.soft)
    be_.copy(h + sr.row * H, in.soft_embeds + sr.offset * H,
             static_cast<size_t>(sr.n) * static_cast<size_t>(H) * sizeof(float));

  // ---- Per-layer embeddings (§4.2). ple[t, l] = (RMSNorm(e W_plmp^T / sqrt(H))[l] +
  //      E_ple[id][l] * sqrt(P)) / sqrt(2). ----
  if (P > 0) {
    be_.linear(h, T, H, w_.per_layer_model_projection, ple, L * P);
    be_.scale(ple, L * P, T, L * P, static_cast<float>(1.0 / std::sqrt(static_cast<double>(H))));
    be_.rmsnorm(ple, T * L, P, P, &w_.per_layer_projection_norm, eps, ple, P);
    be_.embed(w_.embed_tokens_per_layer, d_ids, T, embed_scale(std::sqrt(static_cast<double>(P))),
              ple_tmp, L * P);
    be_.add(ple, L * P, ple_tmp, L * P, T, L * P, ple, L * P);
    be_.scale(ple, L * P, T, L * P, static_cast<float>(1.0 / std::sqrt(2.0)));
  }

  // ---- Decoder layers (§6). ----
  for (int64_t i = 0; i < L; ++i) {
    const LayerSpec& s = c.layers[static_cast<size_t>(i)];
    const LayerWeights& lw = w_.layers[static_cast<size_t>(i)];
    const int D = s.head_dim, Hkv = s.num_kv_heads;
    const int64_t qd = Hq * D, kvd = int64_t{Hkv} * D;
    const int ti = s.type == LayerType::kFull ? 1 : 0;
    capture_layer(static_cast<int>(i), h);

    // Attention block (§5): x = input_layernorm(h); q = RoPE(q_norm(x Wq^T)).
    be_.rmsnorm(h, T, H, H, &lw.input_layernorm, eps, x, H);
    be_.linear(x, T, H, lw.q_proj, q, qd);
    be_.rmsnorm(q, T * Hq, D, D, &lw.q_norm, eps, q, D);
    be_.rope(q, T, qd, static_cast<int>(Hq), D, d_pos, inv_freq_dev_[ti]);
    const int src = s.kv_source;
    const int g = kv.group_of(src);
    FC_CHECK(g >= 0, "forward: layer ", src, " owns no KV storage");
    if (!s.kv_shared) {
      // k = RoPE(k_norm(x Wk^T)); v = v_norm(x Wv^T), or v_norm of the raw K projection (k_eq_v).
      be_.linear(x, T, H, lw.k_proj, k, kvd);
      if (s.has_v_proj) {
        be_.linear(x, T, H, lw.v_proj, v, kvd);
      } else {
        be_.copy(v, k, static_cast<size_t>(T * kvd) * 4);
      }
      be_.rmsnorm(k, T * Hkv, D, D, &lw.k_norm, eps, k, D);
      be_.rope(k, T, kvd, Hkv, D, d_pos, inv_freq_dev_[ti]);
      be_.rmsnorm(v, T * Hkv, D, D, nullptr, eps, v, D);
      be_.kv_write(k, kvd, v, kvd, T, kvd, in.slots[static_cast<size_t>(g)],
                   kv.k(static_cast<int>(i)), kv.v(static_cast<int>(i)), kv.dtype(), lw.k_scale,
                   lw.v_scale);
    }
    AttentionArgs aa;
    aa.q = q;
    aa.ldq = qd;
    aa.out = att;
    aa.ldo = qd;
    aa.k_cache = kv.k(src);
    aa.v_cache = kv.v(src);
    aa.kv_dtype = kv.dtype();
    aa.k_scale = w_.layers[static_cast<size_t>(src)].k_scale;  // the owner's scales (KV sharing)
    aa.v_scale = w_.layers[static_cast<size_t>(src)].v_scale;
    aa.n_heads = static_cast<int>(Hq);
    aa.n_kv_heads = Hkv;
    aa.head_dim = D;
    aa.block_size = B;
    aa.scale = 1.0f;  // Gemma 4: q_norm/k_norm carry the scale
    aa.sliding_window = s.type == LayerType::kSliding ? c.sliding_window : 0;
    aa.n_seqs = n_seqs;
    aa.q_begin = in.q_begin;
    aa.n_q = in.n_q;
    aa.pos0 = in.pos0;
    aa.block_tables = in.tables[static_cast<size_t>(g)];
    aa.table_offset = in.table_off[static_cast<size_t>(g)];
    aa.max_q_per_seq = p.max_q;
    aa.max_keys = p.max_keys;
    // Image blocks see ahead on sliding layers only; full layers stay causal (HF after #46850).
    aa.kv_limit = s.type == LayerType::kSliding ? in.kv_limit : nullptr;
    be_.attention(aa);
    be_.linear(att, T, qd, lw.o_proj, a, H);
    be_.rmsnorm(a, T, H, H, &lw.post_attention_layernorm, eps, a, H);
    be_.add(h, H, a, H, T, H, h, H);  // h = r + post_attention_layernorm(attn)

    // Feed-forward block: dense GeGLU MLP, plus the MoE branch in parallel (§6.2).
    const int64_t I = s.intermediate;
    be_.rmsnorm(h, T, H, H, &lw.pre_feedforward_layernorm, eps, x, H);
    be_.linear(x, T, H, lw.gate_proj, g1, I);
    be_.linear(x, T, H, lw.up_proj, u1, I);
    be_.gelu_mul(g1, I, u1, I, T, I, g1, I);
    be_.linear(g1, T, I, lw.down_proj, a, H);  // a = MLP(x)
    if (c.enable_moe_block) {
      const int E = c.num_experts, K = c.top_k_experts;
      be_.rmsnorm(a, T, H, H, &lw.post_feedforward_layernorm_1, eps, a, H);
      // Router reads the residual r = h: z = RMSNorm_noscale(r) * scale * H^-1/2.
      be_.rmsnorm(h, T, H, H, &lw.router_scale, eps, x, H);
      be_.scale(x, H, T, H, static_cast<float>(1.0 / std::sqrt(static_cast<double>(H))));
      be_.linear(x, T, H, lw.router_proj, g1, E);
      be_.moe_route(g1, E, T, E, K, lw.router_per_expert_scale, moe_idx, moe_w);
      be_.rmsnorm(h, T, H, H, &lw.pre_feedforward_layernorm_2, eps, x, H);
      be_.moe_experts(x, H, T, moe_idx, moe_w, K, lw.expert_gate.data(), lw.expert_up.data(),
                      lw.expert_down.data(), E, m2, H);
      be_.rmsnorm(m2, T, H, H, &lw.post_feedforward_layernorm_2, eps, m2, H);
      be_.add(a, H, m2, H, T, H, a, H);
    }
    be_.rmsnorm(a, T, H, H, &lw.post_feedforward_layernorm, eps, a, H);
    be_.add(h, H, a, H, T, H, h, H);

    // Per-layer-input branch (§6.3): h += RMSNorm((gelu(h Wgate^T) * ple[i]) Wproj^T).
    if (P > 0) {
      be_.linear(h, T, H, lw.per_layer_input_gate, g1, P);
      be_.gelu_mul(g1, P, ple + i * P, L * P, T, P, g1, P);
      be_.linear(g1, T, P, lw.per_layer_projection, a, H);
      be_.rmsnorm(a, T, H, H, &lw.post_per_layer_input_norm, eps, a, H);
      be_.add(h, H, a, H, T, H, h, H);
    }
    be_.scale(h, H, T, H, lw.layer_scalar);
  }

  // ---- Final norm, logits at the requested rows, softcap (§7). ----
  be_.rmsnorm(h, T, H, H, &w_.norm, eps, h, H);
  capture_layer(static_cast<int>(L), h);
  // Recorded steps: logits of every row (the rows wanted change from step to step); eager: the
  // logit rows gathered first.
  const int64_t R = recording ? T : static_cast<int64_t>(p.logit_rows.size());
  o.logits_all_rows = recording;
  if (R > 0) {
    const float* rows = h;
    if (!recording) {
      float* g = buf(R * H);
      for (int64_t r = 0; r < R; ++r)
        be_.copy(g + r * H, h + p.logit_rows[static_cast<size_t>(r)] * H,
                 static_cast<size_t>(H) * 4);
      rows = g;
    }
    float* logits = buf(R * V);
    be_.linear(rows, R, H, w_.lm_head, logits, V);
    if (c.final_logit_softcapping)
      be_.softcap(logits, V, R, V, static_cast<float>(*c.final_logit_softcapping));
    o.logits = logits;
  }
  return o;
}

}  // namespace fc::gemma4
