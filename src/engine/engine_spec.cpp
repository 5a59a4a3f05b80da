// Speculative decoding inside the engine step (spec weight-formats §6): drafts are proposed for
// every decoding request before scheduling, verified with the request's k + 1 logit rows after
// the target forward, and the drafter is shown the hidden states of every verified position.
#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/log.h"
#include "engine/engine.h"

namespace fc {

void Engine::release_draft(RequestId id) {
  if (!drafter_) return;
  drafter_->release(id);
  policy_->release(id);
}

void Engine::propose_drafts() {
  std::vector<RequestId> ready;
  for (const auto& [id, live] : live_)
    if (sched_->decode_ready(id)) ready.push_back(id);
  if (ready.empty()) return;
  std::sort(ready.begin(), ready.end());
  std::vector<spec::ProposeInput> in;
  for (RequestId id : ready) {
    const Live& live = live_.at(id);
    const int left = live.req.max_tokens - live.generated;  // tokens it may still emit
    int k = policy_->choose_k(id, static_cast<int>(ready.size()), live.req.num_speculative_tokens);
    k = std::min(k, left - 1);  // k drafts can emit k + 1 tokens
    if (k <= 0) continue;
    spec::ProposeInput p;
    p.id = id;
    p.tokens = sched_->tokens(id);
    p.k = k;
    for (int g = 0; g < kv_.num_groups(); ++g)
      p.target_block_tables.push_back(&kv_.block_table(id, g));
    for (const EngineMedia& m : live.req.media)
      p.media.push_back({m.input.get(), m.key, m.offset, m.bidirectional});
    in.push_back(std::move(p));
  }
  if (in.empty()) return;
  std::vector<std::vector<int32_t>> drafts;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    drafter_->propose(in, drafts);
  } catch (const std::exception& e) {
    // Drafting is an optimisation: verify without drafts this step, drop the drafter's state.
    log_line(LogLevel::kWarn,
             std::string("drafter failed, continuing without drafts: ") + e.what());
    for (const spec::ProposeInput& p : in) release_draft(p.id);
    return;
  }
  int total = 0;
  const int V = model_.config().vocab_size;
  for (size_t i = 0; i < in.size() && i < drafts.size(); ++i) {
    std::vector<int32_t>& d = drafts[i];
    if (static_cast<int>(d.size()) > in[i].k) d.resize(static_cast<size_t>(in[i].k));
    // Under an output constraint, drafts stop at the first token it refuses (such a draft could
    // never be accepted: verification samples from masked rows).
    if (TokenConstraint* c = live_.at(in[i].id).sampler->constraint()) d.resize(c->valid_prefix(d));
    for (int32_t t : d)
      FC_CHECK(t >= 0 && t < V, "drafter proposed token ", t, " outside the vocabulary");
    total += static_cast<int>(d.size());
    sched_->set_drafts(in[i].id, std::move(d));
  }
  policy_->record_draft(
      total, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

void Engine::verify_seq(const ScheduledSeq& s, const float* logits, Live& live, RequestEvent& ev) {
  const int V = model_.config().vocab_size;
  const int d = s.num_drafts;
  const std::vector<int32_t>& drafts = sched_->drafts(s.id);
  spec::verify(std::span<const float>(logits, static_cast<size_t>(d + 1) * V),
               std::span<const int32_t>(drafts.data(), static_cast<size_t>(d)), {}, *live.sampler,
               scratch_, live.req.logprobs ? &*live.req.logprobs : nullptr,
               live.req.max_tokens - live.generated, verify_);
  ev.tokens = verify_.tokens;
  if (live.req.logprobs) ev.logprobs = verify_.logprobs;
  ++live.spec_drafts;
  live.spec_draft_tokens += d;
  live.spec_accepted_tokens += verify_.num_accepted;
  ++spec_drafts_;
  spec_draft_tokens_ += d;
  spec_accepted_ += verify_.num_accepted;
  if (spec_per_pos_.size() < static_cast<size_t>(d))
    spec_per_pos_.resize(static_cast<size_t>(d), 0);
  for (int i = 0; i < verify_.num_accepted; ++i) ++spec_per_pos_[static_cast<size_t>(i)];
  policy_->record(s.id, d, verify_.num_accepted);
}

void Engine::observe_step(const SchedulerOutput& plan, const std::vector<int>& verified) {
  spec::Drafter& dr = *drafter_;
  const bool hidden = !dr.capture_layers().empty() || dr.needs_final_hidden();
  if (!hidden) return;  // drafters without target hidden states resynchronise from tokens alone
  const int64_t H = model_.config().hidden_size;
  size_t row0 = 0;  // hidden rows are returned for every token of every scheduled seq
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSeq& s = plan.seqs[i];
    const int n = verified[i];
    if (n > 0 && live_.count(s.id)) {
      spec::HiddenRows h;
      h.pos0 = s.pos0;
      h.n = n;
      h.hidden_size = static_cast<int>(H);
      for (const std::vector<float>& c : out_.captured)
        h.captured.emplace_back(c.data() + row0 * H, static_cast<size_t>(n * H));
      if (!out_.final_hidden.empty())
        h.final_hidden = {out_.final_hidden.data() + row0 * H, static_cast<size_t>(n * H)};
      dr.observe(s.id, sched_->tokens(s.id), h);  // covers [0, pos0 + n) and the newest token
    }
    row0 += static_cast<size_t>(s.num_tokens);
  }
}

}  // namespace fc
