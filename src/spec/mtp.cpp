// MtpDrafter: per-request state (the target's last verified hidden state) and the batched draft
// forward (mtp.h). Reads like transformers 5.23 Gemma4AssistantForCausalLM.forward driven by
// SinglePositionMultiTokenCandidateGenerator.get_candidates.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/half.h"
#include "core/log.h"
#include "spec/mtp.h"
#include "spec/mtp_internal.h"

namespace fc::spec {

using gemma4::LayerType;

void MtpDrafter::observe(RequestId id, std::span<const int32_t> /*tokens*/,
                         const HiddenRows& hidden) {
  const int64_t Ht = cfg_.backbone_hidden_size;
  FC_CHECK(hidden.n > 0, "mtp observe: no rows");
  FC_CHECK(hidden.hidden_size == Ht, "mtp observe: hidden size ", hidden.hidden_size,
           ", the assistant's backbone is ", Ht);
  FC_CHECK(static_cast<int64_t>(hidden.final_hidden.size()) >= hidden.n * Ht,
           "mtp observe: final_hidden holds ", hidden.final_hidden.size(), " floats, need ",
           hidden.n * Ht, " (the engine must pass the post-final-norm rows)");
  State& s = state_[id];
  s.pos = hidden.pos0 + hidden.n - 1;
  const float* last = hidden.final_hidden.data() + (hidden.n - 1) * Ht;
  s.hidden.assign(last, last + Ht);
}

void MtpDrafter::release(RequestId id) {
  state_.erase(id);
}

void MtpDrafter::propose(std::span<const ProposeInput> in, std::vector<std::vector<int32_t>>& out) {
  const auto t_start = std::chrono::steady_clock::now();
  const gemma4::Config& c = cfg_.text;
  const int64_t Hd = c.hidden_size, Ht = cfg_.backbone_hidden_size, V = c.vocab_size;
  const int64_t Hq = c.num_attention_heads;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const int B = kv_.block_size();
  out.assign(in.size(), {});
  last_logits_.assign(opt_.keep_logits ? in.size() : 0, {});

  // ---- Requests that can draft: a kept hidden state at the position before the newest token.
  std::vector<size_t> act;  // indices into `in`
  int k_max = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    auto it = state_.find(in[i].id);
    const int n = static_cast<int>(in[i].tokens.size()) - 1;  // position of the newest token
    if (in[i].k <= 0 || n < 1 || it == state_.end() || it->second.pos != n - 1) continue;
    FC_CHECK(in[i].target_block_tables.size() == kv_.groups().size(), "mtp propose: request ",
             in[i].id, " brings ", in[i].target_block_tables.size(),
             " block tables, the target has ", kv_.groups().size(), " KV groups");
    for (const std::vector<int32_t>* tb : in[i].target_block_tables)
      FC_CHECK(tb && static_cast<int64_t>(tb->size()) * B >= n, "mtp propose: request ", in[i].id,
               ": a target block table does not cover positions [0, ", n, ")");
    FC_CHECK(in[i].tokens.back() >= 0 && in[i].tokens.back() < V, "mtp propose: token ",
             in[i].tokens.back(), " outside the vocabulary");
    act.push_back(i);
    k_max = std::max(k_max, in[i].k);
  }
  const int64_t R = static_cast<int64_t>(act.size());
  if (R == 0) return;

  // ---- Host metadata. Query RoPE position n (HF: len(input_ids) - 1); attention runs as a
  // query at n - 1 over the target cache, which holds [0, n): full layers see all of it, sliding
  // layers the last W + 1 entries (HF's flipped |q - kv| <= W mask), clamped to what the target's
  // KV manager still holds.
  const int W = c.sliding_window;
  std::vector<int32_t> pos(static_cast<size_t>(R)), att_pos(static_cast<size_t>(R)),
      toks(static_cast<size_t>(R)), q_begin(static_cast<size_t>(R)),
      ones(static_cast<size_t>(R), 1);
  std::vector<int> win(static_cast<size_t>(R), 0);  // sliding window of each request
  const int n_groups = static_cast<int>(kv_.groups().size());
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(n_groups)),
      table_off(static_cast<size_t>(n_groups));
  int sliding_group = -1;
  for (const Layer& l : layers_)
    if (l.type == LayerType::kSliding) sliding_group = l.group;
  for (int64_t r = 0; r < R; ++r) {
    const ProposeInput& p = in[act[static_cast<size_t>(r)]];
    const int n = static_cast<int>(p.tokens.size()) - 1;
    pos[static_cast<size_t>(r)] = n;
    att_pos[static_cast<size_t>(r)] = n - 1;
    toks[static_cast<size_t>(r)] = p.tokens.back();
    q_begin[static_cast<size_t>(r)] = static_cast<int32_t>(r);
    for (int g = 0; g < n_groups; ++g) {
      const std::vector<int32_t>& tb = *p.target_block_tables[static_cast<size_t>(g)];
      table_off[static_cast<size_t>(g)].push_back(
          static_cast<int32_t>(tables[static_cast<size_t>(g)].size()));
      tables[static_cast<size_t>(g)].insert(tables[static_cast<size_t>(g)].end(), tb.begin(),
                                            tb.end());
    }
    if (sliding_group >= 0) {
      const std::vector<int32_t>& tb = *p.target_block_tables[static_cast<size_t>(sliding_group)];
      int lo = std::max(0, n - 1 - W);  // first position HF's window reads
      int resident = n - 1;             // earliest resident position >= lo
      while (resident > lo && tb[static_cast<size_t>((resident - 1) / B)] >= 0) --resident;
      FC_CHECK(tb[static_cast<size_t>((n - 1) / B)] >= 0, "mtp propose: request ", p.id,
               ": target KV position ", n - 1, " was released");
      if (resident > lo) {
        if (!warned_window_)
          log_line(LogLevel::kWarn,
                   str_cat("mtp: the target released sliding-window KV the assistant reads (",
                           "request ", p.id, ", positions ", lo, "..", resident - 1,
                           "); drafting with a shorter window. Keep max_rollback >= k + ",
                           kMtpSlidingHistoryExtra, "."));
        warned_window_ = true;
        lo = resident;
      }
      win[static_cast<size_t>(r)] = n - lo;  // keys (n - 1 - win, n - 1]
    }
  }
  // One attention call per distinct sliding window (normally one: W + 1).
  std::map<int, std::vector<int32_t>> by_win;
  for (int64_t r = 0; r < R; ++r)
    by_win[win[static_cast<size_t>(r)]].push_back(static_cast<int32_t>(r));

  // ---- Device buffers. ----
  int64_t max_q = 0, max_i = 0;
  for (const Layer& l : layers_) {
    max_q = std::max<int64_t>(max_q, Hq * l.head_dim);
    max_i = std::max<int64_t>(max_i, l.gate_proj.rows);
  }
  const int64_t n_sel = cfg_.use_ordered_embeddings
                            ? int64_t{cfg_.centroid_intermediate_top_k} * (V / cfg_.num_centroids)
                            : 0;
  scratch_->reset();
  auto buf = [&](int64_t n_floats) { return scratch_->next_f32(n_floats); };
  auto ibuf = [&](const std::vector<int32_t>& host) { return scratch_->next_i32(host); };
  float* xin = buf(R * 2 * Ht);  // [R, 2·H_t]: scaled target embedding | h_prev
  float* h = buf(R * Hd);        // residual stream [R, H_d]
  float* x = buf(R * Hd);        // normed input [R, H_d]
  float* a = buf(R * Hd);        // block output [R, H_d]
  float* q = buf(R * max_q);     // [R, Hq, D]
  float* att = buf(R * max_q);   // [R, Hq, D]
  float* g1 = buf(R * max_i);    // MLP gate
  float* u1 = buf(R * max_i);    // MLP up
  float* logits = buf(R * V);    // [R, V]
  float* cen = cfg_.use_ordered_embeddings ? buf(R * cfg_.num_centroids) : nullptr;  // [R, C]
  float* sel = n_sel ? buf(R * n_sel * Hd) : nullptr;    // gathered E_draft rows [R, n_sel, H_d]
  float* sel_logits = n_sel ? buf(R * n_sel) : nullptr;  // [R, n_sel]
  int32_t* d_tok = ibuf(toks);
  int32_t* d_pos = ibuf(pos);
  int32_t* d_att_pos = ibuf(att_pos);
  int32_t* d_qb = ibuf(q_begin);
  int32_t* d_ones = ibuf(ones);
  std::vector<int32_t*> d_tables, d_toff;
  for (int g = 0; g < n_groups; ++g) {
    d_tables.push_back(ibuf(tables[static_cast<size_t>(g)]));
    d_toff.push_back(ibuf(table_off[static_cast<size_t>(g)]));
  }
  // Per window class: the subset's sequence indices / offsets into the flattened tables.
  struct WinCall {
    int window;
    int n;
    int32_t *qb, *nq, *p0;
    std::vector<int32_t*> toff;
  };
  std::vector<WinCall> win_calls;
  for (const auto& [w, rows] : by_win) {
    WinCall wc{w, static_cast<int>(rows.size()), nullptr, nullptr, nullptr, {}};
    std::vector<int32_t> qb, p0, nq(rows.size(), 1);
    for (int32_t r : rows) {
      qb.push_back(q_begin[static_cast<size_t>(r)]);
      p0.push_back(att_pos[static_cast<size_t>(r)]);
    }
    wc.qb = ibuf(qb);
    wc.nq = ibuf(nq);
    wc.p0 = ibuf(p0);
    for (int g = 0; g < n_groups; ++g) {
      std::vector<int32_t> off;
      for (int32_t r : rows)
        off.push_back(table_off[static_cast<size_t>(g)][static_cast<size_t>(r)]);
      wc.toff.push_back(ibuf(off));
    }
    win_calls.push_back(std::move(wc));
  }
  std::vector<int32_t> sel_ids(static_cast<size_t>(R * n_sel));
  int32_t* d_sel_ids = n_sel ? scratch_->next_i32(static_cast<int64_t>(sel_ids.size())) : nullptr;

  // h_prev of step 1: the kept target hidden states.
  for (int64_t r = 0; r < R; ++r) {
    const State& s = state_.at(in[act[static_cast<size_t>(r)]].id);
    be_.to_device(xin + r * 2 * Ht + Ht, s.hidden.data(), static_cast<size_t>(Ht) * 4);
  }
  const double sqrt_ht = std::sqrt(static_cast<double>(Ht));
  const float embed_scale =
      opt_.bf16_embed_scale ? round_bf16(static_cast<float>(sqrt_ht)) : static_cast<float>(sqrt_ht);
  const gemma4::Weights& tw = target_.weights();
  std::vector<float> row_host(static_cast<size_t>(R * V)), cen_host, sel_host;
  std::vector<std::vector<int32_t>> drafts(static_cast<size_t>(R));
  std::vector<std::vector<float>> kept(opt_.keep_logits ? static_cast<size_t>(R) : 0);

  for (int step = 0; step < k_max; ++step) {
    // x = pre_projection(concat(E_target[tok] · √H_t, h_prev)).
    be_.embed(tw.embed_tokens, d_tok, R, embed_scale, xin, 2 * Ht);
    be_.linear(xin, R, 2 * Ht, pre_projection_, h, Hd);

    for (const Layer& l : layers_) {
      const int D = l.head_dim;
      const int64_t qd = Hq * D;
      const int ti = l.type == LayerType::kFull ? 1 : 0;
      // q = RoPE(q_norm(input_layernorm(h) Wqᵀ), n)
      be_.rmsnorm(h, R, Hd, Hd, &l.input_layernorm, eps, x, Hd);
      be_.linear(x, R, Hd, l.q_proj, q, qd);
      be_.rmsnorm(q, R * Hq, D, D, &l.q_norm, eps, q, D);
      be_.rope(q, R, qd, static_cast<int>(Hq), D, d_pos, inv_freq_dev_[ti]);
      const gemma4::LayerWeights& src = tw.layers[static_cast<size_t>(l.src)];
      AttentionArgs aa;
      aa.q = q;
      aa.ldq = qd;
      aa.out = att;
      aa.ldo = qd;
      aa.k_cache = kv_.k(l.src);
      aa.v_cache = kv_.v(l.src);
      aa.kv_dtype = kv_.dtype();
      aa.k_scale = src.k_scale;  // the owner's FP8 scales
      aa.v_scale = src.v_scale;
      aa.n_heads = static_cast<int>(Hq);
      aa.n_kv_heads = l.num_kv_heads;
      aa.head_dim = D;
      aa.block_size = B;
      aa.scale = 1.0f;  // q_norm / the target's k_norm carry the scale
      aa.block_tables = d_tables[static_cast<size_t>(l.group)];
      if (l.type == LayerType::kFull) {  // every request at once, no window
        aa.n_seqs = static_cast<int>(R);
        aa.q_begin = d_qb;
        aa.n_q = d_ones;
        aa.pos0 = d_att_pos;
        aa.table_offset = d_toff[static_cast<size_t>(l.group)];
        be_.attention(aa);
      } else {
        for (const WinCall& wc : win_calls) {  // requests sharing a window; disjoint rows
          aa.sliding_window = wc.window;
          aa.n_seqs = wc.n;
          aa.q_begin = wc.qb;
          aa.n_q = wc.nq;
          aa.pos0 = wc.p0;
          aa.table_offset = wc.toff[static_cast<size_t>(l.group)];
          be_.attention(aa);
        }
      }
      be_.linear(att, R, qd, l.o_proj, a, Hd);
      be_.rmsnorm(a, R, Hd, Hd, &l.post_attention_layernorm, eps, a, Hd);
      be_.add(h, Hd, a, Hd, R, Hd, h, Hd);
      const int64_t I = l.gate_proj.rows;
      be_.rmsnorm(h, R, Hd, Hd, &l.pre_feedforward_layernorm, eps, x, Hd);
      be_.linear(x, R, Hd, l.gate_proj, g1, I);
      be_.linear(x, R, Hd, l.up_proj, u1, I);
      be_.gelu_mul(g1, I, u1, I, R, I, g1, I);
      be_.linear(g1, R, I, l.down_proj, a, Hd);
      be_.rmsnorm(a, R, Hd, Hd, &l.post_feedforward_layernorm, eps, a, Hd);
      be_.add(h, Hd, a, Hd, R, Hd, h, Hd);
      be_.scale(h, Hd, R, Hd, l.layer_scalar);
    }
    // d = norm(h); h_next = d W_postᵀ goes straight into the h_prev half of the next input.
    be_.rmsnorm(h, R, Hd, Hd, &norm_, eps, h, Hd);
    be_.linear(h, R, Hd, post_projection_, xin + Ht, 2 * Ht);

    if (!cfg_.use_ordered_embeddings) {
      be_.linear(h, R, Hd, lm_head_, logits, V);
      if (opt_.softcap_logits && c.final_logit_softcapping)
        be_.softcap(logits, V, R, V, static_cast<float>(*c.final_logit_softcapping));
      be_.to_host(row_host.data(), logits, static_cast<size_t>(R * V) * 4);
    } else {
      // Centroid path (HF Gemma4AssistantMaskedEmbedder): top-k of d · centroidsᵀ, the tokens
      // token_ordering lists for those clusters get d · E_draft[token], the rest min - 1.
      const int C = cfg_.num_centroids, K = cfg_.centroid_intermediate_top_k;
      const int64_t per = V / C;
      be_.linear(h, R, Hd, centroids_, cen, C);
      cen_host.resize(static_cast<size_t>(R * C));
      be_.to_host(cen_host.data(), cen, cen_host.size() * 4);
      std::vector<int> order(static_cast<size_t>(C));
      for (int64_t r = 0; r < R; ++r) {
        const float* cr = cen_host.data() + r * C;
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + K, order.end(),
                          [&](int i, int j) { return cr[i] > cr[j] || (cr[i] == cr[j] && i < j); });
        for (int j = 0; j < K; ++j)
          for (int64_t e = 0; e < per; ++e)
            sel_ids[static_cast<size_t>((r * K + j) * per + e)] =
                token_ordering_[static_cast<size_t>(order[static_cast<size_t>(j)] * per + e)];
      }
      be_.to_device(d_sel_ids, sel_ids.data(), sel_ids.size() * 4);
      be_.embed(lm_head_, d_sel_ids, R * n_sel, 1.0f, sel, Hd);
      for (int64_t r = 0; r < R; ++r) {
        Weight wsel;  // the gathered rows of request r as an fp32 [n_sel, H_d] matrix
        wsel.data = sel + r * n_sel * Hd;
        wsel.dtype = DType::kF32;
        wsel.rows = n_sel;
        wsel.cols = Hd;
        wsel.ld = Hd;
        wsel.name = "mtp.selected_embeddings";
        be_.linear(h + r * Hd, 1, Hd, wsel, sel_logits + r * n_sel, n_sel);
      }
      sel_host.resize(static_cast<size_t>(R * n_sel));
      be_.to_host(sel_host.data(), sel_logits, sel_host.size() * 4);
      for (int64_t r = 0; r < R; ++r) {
        const float* sr = sel_host.data() + r * n_sel;
        const float fill = *std::min_element(sr, sr + n_sel) - 1.0f;
        float* row = row_host.data() + r * V;
        std::fill(row, row + V, fill);
        for (int64_t j = 0; j < n_sel; ++j)
          row[sel_ids[static_cast<size_t>(r * n_sel + j)]] = sr[j];
      }
    }
    // Suppressed tokens, then greedy (lowest id on ties, as torch.argmax).
    for (int64_t r = 0; r < R; ++r) {
      float* row = row_host.data() + r * V;
      for (int32_t s : cfg_.suppress_tokens) row[s] = -std::numeric_limits<float>::infinity();
      const int32_t best = static_cast<int32_t>(std::max_element(row, row + V) - row);
      drafts[static_cast<size_t>(r)].push_back(best);
      toks[static_cast<size_t>(r)] = best;
      if (opt_.keep_logits)
        kept[static_cast<size_t>(r)].insert(kept[static_cast<size_t>(r)].end(), row, row + V);
    }
    if (step + 1 < k_max) be_.to_device(d_tok, toks.data(), toks.size() * 4);
    ++stats_.forward_calls;
  }

  for (int64_t r = 0; r < R; ++r) {
    const size_t i = act[static_cast<size_t>(r)];
    std::vector<int32_t>& d = drafts[static_cast<size_t>(r)];
    d.resize(static_cast<size_t>(std::min<int>(in[i].k, static_cast<int>(d.size()))));
    out[i] = std::move(d);
    if (opt_.keep_logits) {
      kept[static_cast<size_t>(r)].resize(out[i].size() * static_cast<size_t>(V));
      last_logits_[i] = std::move(kept[static_cast<size_t>(r)]);
    }
  }
  stats_.seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
}

}  // namespace fc::spec
