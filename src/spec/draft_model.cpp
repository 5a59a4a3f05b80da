#include "spec/draft_model.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "sample/sampler.h"

namespace fc::spec {
namespace {

SessionOptions session_options(const DraftModelOptions& o) {
  SessionOptions s;
  s.max_seqs = o.max_seqs;
  s.max_tokens = o.kv_tokens;
  s.max_step_tokens = o.max_step_tokens;
  // propose() rolls back at most the k - 1 drafts it fed past the last single-token step.
  s.max_rollback = o.k_max;
  s.kv_dtype = o.kv_dtype;
  return s;
}

}  // namespace

DraftModelDrafter::DraftModelDrafter(gemma4::Model& drafter, const gemma4::Model& target,
                                     Backend& backend, const DraftModelOptions& opt)
    : model_(drafter), session_(drafter, backend, session_options(opt)), encoder_(opt.encoder) {
  if (encoder_ && encoder_->embed_dim() != drafter.config().hidden_size)
    fail("--speculative-config: the draft model's media encoder width ", encoder_->embed_dim(),
         " differs from its hidden size ", drafter.config().hidden_size);
  if (drafter.config().vocab_size != target.config().vocab_size)
    fail("--speculative-config: the draft model's vocab_size ", drafter.config().vocab_size,
         " differs from the target's ", target.config().vocab_size,
         " (draft_model needs the same tokenizer)");
}

void DraftModelDrafter::release(RequestId id) {
  if (cached_.erase(id)) session_.remove(id);
  media_out_.erase(id);
}

Session::StepMedia DraftModelDrafter::media_for(const ProposeInput& p, int begin, int end) {
  Session::StepMedia sm;
  if (!encoder_) return sm;
  const bool bidi = model_.config().use_bidirectional_attention == "vision";
  auto& outs = media_out_[p.id];
  const int64_t H = model_.config().hidden_size;
  for (const DraftMedia& m : p.media) {
    const int mb = m.offset, me = m.offset + m.input->num_tokens;
    if (me <= begin || mb >= end) continue;
    auto it = outs.find(m.key);
    if (it == outs.end()) {
      std::vector<float> rows(static_cast<size_t>(m.input->num_tokens * H));
      encoder_->encode({m.input}, rows.data());
      it = outs.emplace(m.key, std::move(rows)).first;
    }
    const int lo = std::max(mb, begin), hi = std::min(me, end);
    sm.soft_tokens.push_back({lo, hi - lo, it->second.data() + static_cast<size_t>(lo - mb) * H});
    if (bidi && m.bidirectional) sm.bidi_blocks.emplace_back(mb, me);
  }
  return sm;
}

void DraftModelDrafter::propose(std::span<const ProposeInput> in,
                                std::vector<std::vector<int32_t>>& out) {
  const auto t0 = std::chrono::steady_clock::now();
  out.assign(in.size(), {});
  const int V = model_.config().vocab_size;
  // Pass 1: resynchronise each request's cache and feed what it lacks (at least the newest token).
  std::vector<Session::Step> steps;
  std::vector<Session::StepMedia> media;  // the first pass's soft tokens (prefill)
  std::vector<size_t> who;                // index into `in` of each step
  for (size_t i = 0; i < in.size(); ++i) {
    const ProposeInput& p = in[i];
    if (p.k <= 0 || p.tokens.empty()) continue;
    auto [it, fresh] = cached_.try_emplace(p.id);
    if (fresh) session_.add(p.id);
    std::vector<int32_t>& have = it->second;
    size_t common = 0;
    while (common < have.size() && common < p.tokens.size() && have[common] == p.tokens[common])
      ++common;
    if (common == p.tokens.size()) --common;  // always recompute the newest token's logits
    if (common < have.size()) {
      session_.truncate(p.id, static_cast<int>(common));
      have.resize(common);
    }
    Session::Step s;
    s.id = p.id;
    s.tokens.assign(p.tokens.begin() + static_cast<std::ptrdiff_t>(common), p.tokens.end());
    s.logit_rows = {static_cast<int>(s.tokens.size()) - 1};
    media.push_back(media_for(p, static_cast<int>(common), static_cast<int>(p.tokens.size())));
    steps.push_back(std::move(s));
    who.push_back(i);
  }
  int max_k = 0;
  for (size_t w = 0; w < steps.size(); ++w) max_k = std::max(max_k, in[who[w]].k);
  for (int round = 0; !steps.empty() && round < max_k; ++round) {
    try {
      session_.run(steps, out_, {}, false, round == 0 ? media : std::vector<Session::StepMedia>{});
    } catch (const Error&) {
      // Out of drafter KV: these requests get the drafts made so far; their cache is rebuilt
      // from the common prefix next time.
      for (size_t w : who) release(in[w].id);
      break;
    }
    ++stats_.forward_calls;
    std::vector<Session::Step> next;
    std::vector<size_t> next_who;
    for (size_t w = 0; w < steps.size(); ++w) {
      const size_t i = who[w];
      std::vector<int32_t>& have = cached_[in[i].id];
      have.insert(have.end(), steps[w].tokens.begin(), steps[w].tokens.end());
      const float* row = out_.logits.data() + w * static_cast<size_t>(V);
      const int32_t d = argmax(std::span<const float>(row, static_cast<size_t>(V)));
      out[i].push_back(d);
      if (static_cast<int>(out[i].size()) < in[i].k) {
        Session::Step s;
        s.id = in[i].id;
        s.tokens = {d};
        s.logit_rows = {0};
        next.push_back(std::move(s));
        next_who.push_back(i);
      }
    }
    steps.swap(next);
    who.swap(next_who);
  }
  stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace fc::spec
