#include "engine/engine.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/log.h"

namespace fc {

std::optional<RequestEvent> RequestStream::next(int timeout_ms) {
  std::unique_lock<std::mutex> lk(mu_);
  if (!cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return !q_.empty(); }))
    return std::nullopt;
  RequestEvent ev = std::move(q_.front());
  q_.pop_front();
  while (!q_.empty() && !ev.finished) {  // merge what piled up
    RequestEvent& n = q_.front();
    ev.tokens.insert(ev.tokens.end(), n.tokens.begin(), n.tokens.end());
    ev.logprobs.insert(ev.logprobs.end(), n.logprobs.begin(), n.logprobs.end());
    ev.prompt_logprobs.insert(ev.prompt_logprobs.end(), n.prompt_logprobs.begin(),
                              n.prompt_logprobs.end());
    ev.finished = n.finished;
    ev.finish_reason = n.finish_reason;
    ev.error = n.error;
    ev.num_prompt_tokens = n.num_prompt_tokens;
    ev.num_cached_tokens = n.num_cached_tokens;
    ev.spec_drafts = n.spec_drafts;  // cumulative counters: the latest wins
    ev.spec_draft_tokens = n.spec_draft_tokens;
    ev.spec_accepted_tokens = n.spec_accepted_tokens;
    q_.pop_front();
  }
  return ev;
}

void RequestStream::push(RequestEvent ev) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (done_) return;
    done_ = ev.finished;
    q_.push_back(std::move(ev));
    if (notify_) notify_();
  }
  cv_.notify_all();
}

void RequestStream::set_notify(std::function<void()> notify) {
  std::lock_guard<std::mutex> lk(mu_);
  notify_ = std::move(notify);
}

namespace {

SessionOptions kv_options(const EngineConfig& c) {
  SessionOptions o;
  o.block_size = c.block_size;
  o.max_tokens = c.kv_tokens;
  o.sliding_tokens = c.kv_sliding_tokens;
  o.max_seqs = c.scheduler.max_num_seqs;
  // Rejected drafts are rolled back behind the end of the verification step's grow.
  // The MTP assistant also reads two sliding positions further back than the target's next
  // query (spec/mtp.h: HF's window of W + 1 keys ending one before the newest token).
  o.max_rollback = std::max(c.max_rollback, c.make_drafter ? c.spec_policy.k_max + 2 : 0);
  o.max_step_tokens = c.scheduler.max_num_batched_tokens;
  return o;
}

}  // namespace

Engine::Engine(gemma4::Model& model, Backend& backend, const EngineConfig& cfg)
    : model_(model), backend_(backend), cfg_(cfg), kv_(make_kv_config(model, kv_options(cfg))) {
  std::vector<int> blocks;
  for (int g = 0; g < kv_.num_groups(); ++g) blocks.push_back(kv_.num_blocks(g));
  storage_ = std::make_unique<kv::KVStorage>(backend_, model_.kv_layout(), cfg_.block_size, blocks,
                                             cfg_.kv_dtype);
  if (!cfg_.encoders.empty()) {
    // vLLM: encoder compute budget and cache size are at least max_num_batched_tokens.
    SchedulerConfig& sc = cfg_.scheduler;
    if (sc.encoder_compute_budget <= 0) sc.encoder_compute_budget = sc.max_num_batched_tokens;
    if (sc.encoder_cache_size <= 0) sc.encoder_cache_size = sc.encoder_compute_budget;
  }
  sched_ = std::make_unique<Scheduler>(cfg_.scheduler, kv_);
  if (cfg_.make_drafter) drafter_ = cfg_.make_drafter(*storage_);
  if (drafter_) {
    policy_ = std::make_unique<spec::SpecPolicy>(cfg_.spec_policy);
    stats_.spec_method = drafter_->method();
    spec_per_pos_.assign(static_cast<size_t>(std::max(0, cfg_.spec_policy.k_max)), 0);
  }
  // The KV gauges are right before the first step (the engine thread updates them after each).
  const int full = kv_.num_groups() - 1;
  stats_.kv_blocks_total = kv_.num_blocks(full);
  stats_.kv_blocks_free = kv_.num_free_blocks(full);
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
  shutdown(false);
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<RequestStream> Engine::submit(EngineRequest req) {
  FC_CHECK(!req.prompt.empty(), "the prompt is empty");
  // max_tokens 0: the prompt is computed (for its logprobs) and nothing generated.
  FC_CHECK(req.max_tokens >= 0, "max_tokens must be at least 0, got ", req.max_tokens);
  const int64_t total = static_cast<int64_t>(req.prompt.size()) + req.max_tokens;
  if (total > cfg_.scheduler.max_model_len)
    fail("this model's maximum context length is ", cfg_.scheduler.max_model_len,
         " tokens; the request needs ", req.prompt.size(), " prompt tokens plus max_tokens ",
         req.max_tokens, " = ", total);
  const int V = model_.config().vocab_size;
  for (int32_t t : req.prompt)
    FC_CHECK(t >= 0 && t < V, "prompt token id ", t, " is outside [0, ", V, ")");
  int media_end = 0;
  for (const EngineMedia& m : req.media) {
    FC_CHECK(m.input && m.input->num_tokens > 0, "a media item without soft tokens");
    FC_CHECK(encoder_for(m.input->modality), "the model has no encoder for ", m.input->modality,
             " input");
    FC_CHECK(m.offset >= media_end &&
                 m.offset + m.input->num_tokens <= static_cast<int>(req.prompt.size()),
             "media item at ", m.offset, " (", m.input->num_tokens,
             " soft tokens) overlaps another or ends past the prompt");
    for (int t = m.offset; t < m.offset + m.input->num_tokens; ++t)
      FC_CHECK(model_.config().mm.is_placeholder(req.prompt[static_cast<size_t>(t)]),
               "prompt position ", t, " of a media item holds token ",
               req.prompt[static_cast<size_t>(t)], ", not a soft-token placeholder");
    media_end = m.offset + m.input->num_tokens;
  }
  // min_tokens bans the request's stop tokens (eos unless ignored) until it is reached.
  FC_CHECK(req.sampling.min_tokens <= req.max_tokens, "min_tokens must be less than or equal to ",
           "max_tokens=", req.max_tokens, ", got ", req.sampling.min_tokens, ".");
  req.sampling.min_tokens_stop_ids = req.stop_token_ids;
  Live live;
  live.sampler = std::make_unique<SamplerState>(req.sampling, req.prompt, V);  // validates params
  std::lock_guard<std::mutex> lk(mu_);
  FC_CHECK(!stop_ && !draining_, "the server is shutting down");
  const RequestId id = next_id_++;
  live.stream = std::make_shared<RequestStream>(id);
  live.req = std::move(req);
  auto stream = live.stream;
  inbox_.emplace_back(id, std::move(live));
  cv_.notify_all();
  return stream;
}

void Engine::abort(RequestId id) {
  std::lock_guard<std::mutex> lk(mu_);
  aborts_.push_back(id);
  cv_.notify_all();
}

void Engine::shutdown(bool drain) {
  std::unique_lock<std::mutex> lk(mu_);
  draining_ = true;
  if (drain)
    cv_.wait(lk, [&] {
      return stop_ || (inbox_.empty() && stats_.running == 0 && stats_.waiting == 0);
    });
  stop_ = true;
  cv_.notify_all();
}

bool Engine::alive() const {
  std::lock_guard<std::mutex> lk(mu_);
  return !stop_;
}

bool Engine::accepting() const {
  std::lock_guard<std::mutex> lk(mu_);
  return !stop_ && !draining_;
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

void Engine::finish(RequestId id, Live& live, const std::string& reason, const std::string& error) {
  RequestEvent ev;
  ev.finished = true;
  ev.finish_reason = reason;
  ev.error = error;
  ev.num_prompt_tokens = static_cast<int>(live.req.prompt.size());
  ev.spec_drafts = live.spec_drafts;
  ev.spec_draft_tokens = live.spec_draft_tokens;
  ev.spec_accepted_tokens = live.spec_accepted_tokens;
  live.stream->push(std::move(ev));
  sched_->abort(id);  // frees blocks (no-op if already gone)
  release_draft(id);
}

void Engine::loop() {
  for (;;) {
    std::vector<std::pair<RequestId, Live>> arrived;
    std::vector<RequestId> aborted;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !inbox_.empty() || !aborts_.empty() || !live_.empty(); });
      if (stop_) break;
      arrived.swap(inbox_);
      aborted.swap(aborts_);
    }
    for (auto& [id, live] : arrived) {
      try {
        // max_tokens 0 still reserves the slot of the token it will not sample.
        std::vector<MmRange> mm;
        for (const EngineMedia& m : live.req.media)
          mm.push_back({m.offset, m.input->num_tokens, m.key, m.bidirectional});
        sched_->add(id, live.req.prompt, std::max(1, live.req.max_tokens),
                    /*no_prefix_hit=*/live.req.prompt_logprobs >= 0, std::move(mm));
        live_.emplace(id, std::move(live));
      } catch (const Error& e) {
        finish(id, live, "error", e.what());
      }
    }
    for (RequestId id : aborted) {
      auto it = live_.find(id);
      if (it == live_.end()) continue;
      finish(id, it->second, "abort");
      live_.erase(it);
    }
    if (!live_.empty()) {
      try {
        step();
      } catch (const std::exception& e) {
        // A bug in scheduling must not kill the server: end the requests in flight and go on.
        log_line(LogLevel::kError, std::string("engine step failed: ") + e.what());
        for (auto& [id, live] : live_) {
          try {
            finish(id, live, "error", e.what());
          } catch (...) {
          }
        }
        live_.clear();
      }
    }
    std::lock_guard<std::mutex> lk(mu_);
    const SchedulerStats s = sched_->stats();
    stats_.running = s.num_running;
    stats_.waiting = s.num_waiting;
    stats_.preemptions = s.num_preemptions;
    stats_.prefix_query_tokens = s.prefix_query_tokens;
    stats_.prefix_hit_tokens = s.prefix_hit_tokens;
    stats_.encoder_cache_queries = s.encoder_cache_queries;
    stats_.encoder_cache_hits = s.encoder_cache_hits;
    stats_.mm_items_encoded = mm_items_encoded_;
    const int full = kv_.num_groups() - 1;
    stats_.kv_blocks_total = kv_.num_blocks(full);
    stats_.kv_blocks_free = kv_.num_free_blocks(full);
    cv_.notify_all();  // shutdown(drain) waits on these counters
  }
  // Stopped: every request still here ends as aborted.
  for (auto& [id, live] : live_) finish(id, live, "abort");
  live_.clear();
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& [id, live] : inbox_) finish(id, live, "abort");
  inbox_.clear();
}

void Engine::step() {
  if (drafter_) propose_drafts();
  SchedulerOutput plan = sched_->schedule();
  for (RequestId id : plan.preempted) release_draft(id);
  run_encoders(plan);
  // Requests an encoder failure ended leave the step.
  std::erase_if(plan.seqs, [&](const ScheduledSeq& s) { return !live_.count(s.id); });
  if (plan.empty()) return;
  gemma4::ForwardBatch batch;
  const bool hidden =
      drafter_ && (!drafter_->capture_layers().empty() || drafter_->needs_final_hidden());
  if (hidden) {
    batch.capture_layers = drafter_->capture_layers();
    batch.want_final_hidden = drafter_->needs_final_hidden();
  }
  std::vector<std::vector<int32_t>> chunks(plan.seqs.size());
  std::vector<int> prompt_rows(plan.seqs.size(), 0);  // leading logit rows for prompt logprobs
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSeq& s = plan.seqs[i];
    const std::vector<int32_t>& toks = sched_->tokens(s.id);
    const int plain = s.num_tokens - s.num_drafts;  // tokens of the request, then drafts
    chunks[i].assign(toks.begin() + s.pos0, toks.begin() + s.pos0 + plain);
    const std::vector<int32_t>& drafts = sched_->drafts(s.id);
    chunks[i].insert(chunks[i].end(), drafts.begin(), drafts.begin() + s.num_drafts);
    gemma4::SeqInput in;
    in.tokens = chunks[i].data();
    in.n = s.num_tokens;
    in.pos0 = s.pos0;
    for (int g = 0; g < kv_.num_groups(); ++g) in.block_tables.push_back(&kv_.block_table(s.id, g));
    attach_media(s, in);
    auto lit = live_.find(s.id);
    if (lit != live_.end() && lit->second.req.prompt_logprobs >= 0) {
      // Row r predicts the token at s.pos0 + r + 1: a prompt token not reported yet.
      const int np = sched_->num_prompt_tokens(s.id);
      for (int r = 0; r < plain; ++r) {
        const int p = s.pos0 + r + 1;
        if (p < np && p >= lit->second.prompt_lp_next) {
          in.logit_rows.push_back(r);
          ++prompt_rows[i];
        }
      }
    }
    if (s.needs_logits)
      for (int r = plain - 1; r < s.num_tokens; ++r) in.logit_rows.push_back(r);
    if (hidden)
      for (int r = 0; r < s.num_tokens; ++r) in.hidden_rows.push_back(r);
    batch.seqs.push_back(std::move(in));
  }
  const auto t_fwd = std::chrono::steady_clock::now();
  try {
    model_.forward(batch, *storage_, out_);
  } catch (const std::exception& e) {
    // A failed step ends the requests in it (never the server).
    log_line(LogLevel::kError, std::string("engine step failed: ") + e.what());
    for (const ScheduledSeq& s : plan.seqs) {
      auto it = live_.find(s.id);
      if (it == live_.end()) continue;
      finish(s.id, it->second, "error", e.what());
      live_.erase(it);
    }
    return;
  }
  if (policy_)
    policy_->record_step(
        plan.num_batched_tokens,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_fwd).count());
  sched_->on_step_done(plan);
  const int V = model_.config().vocab_size;
  int row = 0;
  int64_t prompt_tokens = 0, gen_tokens = 0;
  std::vector<int> verified(plan.seqs.size());  // positions of each seq now valid in the KV
  for (size_t si = 0; si < plan.seqs.size(); ++si) {
    const ScheduledSeq& s = plan.seqs[si];
    verified[si] = s.num_tokens - s.num_drafts;
    const int np = sched_->num_prompt_tokens(s.id);
    prompt_tokens += std::min(s.pos0 + s.num_tokens, np) - std::min(s.pos0, np);
    auto it = live_.find(s.id);
    RequestEvent ev;
    if (prompt_rows[si] > 0 && it != live_.end()) {
      Live& live = it->second;
      const std::vector<int32_t>& toks = sched_->tokens(s.id);
      try {
        for (int j = 0; j < prompt_rows[si]; ++j) {
          const float* l = out_.logits.data() + static_cast<size_t>(row + j) * V;
          SampleResult r;
          raw_token_logprobs(std::span<const float>(l, static_cast<size_t>(V)),
                             toks[static_cast<size_t>(live.prompt_lp_next)],
                             live.req.prompt_logprobs, r);
          ev.prompt_logprobs.push_back(std::move(r));
          ++live.prompt_lp_next;
        }
      } catch (const Error& e) {
        finish(s.id, live, "error", e.what());
        live_.erase(it);
        it = live_.end();
      }
    }
    row += prompt_rows[si];
    if (!s.needs_logits) {
      if (!ev.prompt_logprobs.empty() && it != live_.end()) it->second.stream->push(std::move(ev));
      continue;
    }
    const float* logits = out_.logits.data() + static_cast<size_t>(row) * V;
    row += 1 + s.num_drafts;
    if (it == live_.end()) continue;
    Live& live = it->second;
    if (live.req.max_tokens == 0) {  // the prompt scored, nothing to generate
      ev.finished = true;
      ev.finish_reason = "length";
      ev.num_prompt_tokens = np;
      live.stream->push(std::move(ev));
      sched_->finish(s.id);
      release_draft(s.id);
      live_.erase(it);
      verified[si] = 0;
      continue;
    }
    try {
      if (s.num_drafts > 0) {
        verify_seq(s, logits, live, ev);
        verified[si] += verify_.num_accepted;
      } else {
        SampleResult r;
        sample(std::span<const float>(logits, static_cast<size_t>(V)), *live.sampler, scratch_,
               live.req.logprobs ? &*live.req.logprobs : nullptr, r);
        live.sampler->accept(r.token);
        ev.tokens.push_back(r.token);
        if (live.req.logprobs) ev.logprobs.push_back(std::move(r));
      }
    } catch (const Error& e) {
      finish(s.id, live, "error", e.what());
      live_.erase(it);
      continue;
    }
    // A stop token ends the request where it appears (later tokens of a draft are dropped).
    const auto& stops = live.req.stop_token_ids;
    size_t keep = ev.tokens.size();
    bool stop = false;
    for (size_t j = 0; j < ev.tokens.size() && !stop; ++j)
      if (std::find(stops.begin(), stops.end(), ev.tokens[j]) != stops.end()) {
        stop = true;
        keep = j + 1;
      }
    ev.tokens.resize(keep);
    if (ev.logprobs.size() > keep) ev.logprobs.resize(keep);
    live.generated += static_cast<int>(keep);
    gen_tokens += static_cast<int64_t>(keep);
    ev.num_prompt_tokens = sched_->num_prompt_tokens(s.id);
    ev.num_cached_tokens = sched_->num_cached_prompt_tokens(s.id);
    ev.spec_drafts = live.spec_drafts;
    ev.spec_draft_tokens = live.spec_draft_tokens;
    ev.spec_accepted_tokens = live.spec_accepted_tokens;
    if (stop || live.generated >= live.req.max_tokens) {
      ev.finished = true;
      ev.finish_reason = stop ? "stop" : "length";
      live.stream->push(std::move(ev));
      sched_->finish(s.id);
      release_draft(s.id);
      live_.erase(it);
      verified[si] = 0;
    } else {
      if (s.num_drafts > 0) sched_->accept_drafts(s.id, verify_.num_accepted);
      sched_->append_token(s.id, ev.tokens.back());
      live.stream->push(std::move(ev));
    }
  }
  if (drafter_) observe_step(plan, verified);
  std::lock_guard<std::mutex> lk(mu_);
  stats_.prompt_tokens += prompt_tokens;
  stats_.generation_tokens += gen_tokens;
  ++stats_.steps;
  stats_.spec_drafts = spec_drafts_;
  stats_.spec_draft_tokens = spec_draft_tokens_;
  stats_.spec_accepted_tokens = spec_accepted_;
  stats_.spec_accepted_per_pos = spec_per_pos_;
}

}  // namespace fc
