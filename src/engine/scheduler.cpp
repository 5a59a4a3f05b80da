// vLLM V1 scheduling (vllm/v1/core/sched/scheduler.py, Scheduler.schedule): one token budget per
// step; running requests first, oldest first, each taking min(remaining, budget) tokens and
// preempting the newest running request when its blocks cannot be allocated; then waiting
// requests in FIFO order, each starting from its longest cached prefix, unless this step
// preempted something (as vLLM does: freed blocks go to the running requests first).
#include "engine/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace fc {

Scheduler::Scheduler(SchedulerConfig cfg, kv::KVManager& kv) : cfg_(cfg), kv_(kv) {
  FC_CHECK(cfg_.max_num_seqs >= 1, "Scheduler: max_num_seqs must be >= 1");
  FC_CHECK(cfg_.max_num_batched_tokens >= 1, "Scheduler: max_num_batched_tokens must be >= 1");
  FC_CHECK(cfg_.max_model_len >= 1, "Scheduler: max_model_len must be >= 1");
}

Scheduler::Request& Scheduler::req(RequestId id) {
  auto it = reqs_.find(id);
  FC_CHECK(it != reqs_.end(), "Scheduler: unknown request ", id);
  return it->second;
}
const Scheduler::Request& Scheduler::req(RequestId id) const {
  auto it = reqs_.find(id);
  FC_CHECK(it != reqs_.end(), "Scheduler: unknown request ", id);
  return it->second;
}

void Scheduler::add(RequestId id, std::vector<int32_t> prompt, int max_tokens, bool no_prefix_hit) {
  FC_CHECK(!reqs_.count(id), "Scheduler::add: request ", id, " already exists");
  FC_CHECK(!prompt.empty(), "Scheduler::add: request ", id, " has an empty prompt");
  FC_CHECK(max_tokens >= 1, "Scheduler::add: max_tokens must be >= 1, got ", max_tokens);
  const int64_t total = static_cast<int64_t>(prompt.size()) + max_tokens;
  FC_CHECK(total <= cfg_.max_model_len, "Scheduler::add: prompt (", prompt.size(),
           " tokens) + max_tokens (", max_tokens, ") exceeds max_model_len ", cfg_.max_model_len);
  // The longest step this request can take: a budget-sized chunk, or without chunked prefill a
  // whole recompute after preemption (prompt + all but the last generated token).
  int64_t longest_step = std::min<int64_t>(total, cfg_.max_num_batched_tokens);
  if (!cfg_.enable_chunked_prefill) {
    longest_step = total - 1;
    FC_CHECK(longest_step <= cfg_.max_num_batched_tokens, "Scheduler::add: prompt (", prompt.size(),
             " tokens) + max_tokens (", max_tokens,
             ") does not fit one step of max_num_batched_tokens ", cfg_.max_num_batched_tokens,
             " (chunked prefill is off)");
  }
  // Capacity when running alone: a full group holds every position; a sliding group holds at most
  // window - 1 + max_rollback positions before the step plus the step, spread over one extra
  // partial block (see KVManager::keep_from).
  const kv::ManagerConfig& kc = kv_.config();
  const int64_t bs = kc.block_size;
  for (int g = 0; g < kv_.num_groups(); ++g) {
    const int w = kc.groups[static_cast<size_t>(g)].sliding_window;
    int64_t need = (total + bs - 1) / bs;
    if (w > 0) need = std::min(need, (w - 1 + kc.max_rollback + longest_step + bs - 1) / bs + 1);
    FC_CHECK(need <= kv_.num_blocks(g), "Scheduler::add: request ", id, " needs ", need,
             " KV blocks in group ", g, " but the cache has ", kv_.num_blocks(g), " (prompt ",
             prompt.size(), " + max_tokens ", max_tokens, " tokens)");
  }
  Request r;
  r.num_prompt = static_cast<int>(prompt.size());
  r.tokens = std::move(prompt);
  r.max_tokens = max_tokens;
  r.no_prefix_hit = no_prefix_hit;
  reqs_.emplace(id, std::move(r));
  waiting_.push_back(id);
}

void Scheduler::drop_kv_and_queues(RequestId id, Request& r) {
  if (r.state == RequestState::kRunning) {
    kv_.remove_sequence(id);
    running_.erase(std::find(running_.begin(), running_.end(), id));
  } else if (r.state == RequestState::kWaiting || r.state == RequestState::kPreempted) {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), id));
  }
}

void Scheduler::abort(RequestId id) {
  auto it = reqs_.find(id);
  if (it == reqs_.end()) return;
  drop_kv_and_queues(id, it->second);
  reqs_.erase(it);
}

void Scheduler::finish(RequestId id) {
  Request& r = req(id);
  if (r.state == RequestState::kFinished) return;
  drop_kv_and_queues(id, r);
  r.state = RequestState::kFinished;
  finished_.push_back(id);
}

void Scheduler::preempt(RequestId id, SchedulerOutput& out) {
  Request& r = req(id);
  kv_.remove_sequence(id);  // committed blocks stay cached: resuming usually hits them
  running_.erase(std::find(running_.begin(), running_.end(), id));
  r.state = RequestState::kPreempted;
  r.num_computed = 0;
  r.drafts.clear();
  r.scheduled_drafts = 0;
  waiting_.push_front(id);
  out.preempted.push_back(id);
  ++num_preemptions_;
}

void Scheduler::schedule_running(SchedulerOutput& out, int& budget) {
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    const RequestId id = running_[i];
    Request& r = req(id);
    const int remaining = static_cast<int>(r.tokens.size()) - r.num_computed;
    // Drafts ride along with the newest token, within the budget and max_model_len.
    const int room = cfg_.max_model_len - static_cast<int>(r.tokens.size());
    const int drafts =
        remaining == 1
            ? std::max(0, std::min({static_cast<int>(r.drafts.size()), budget - 1, room}))
            : 0;
    const int n = std::min(remaining, budget) + drafts;
    // Nothing to do until append_token; or (no chunked prefill) a prefill that no longer fits.
    if (n <= 0 || (!cfg_.enable_chunked_prefill && n < remaining)) {
      ++i;
      continue;
    }
    bool scheduled = true;
    // Out of blocks for the drafts: verify fewer rather than preempt anyone for them.
    // (grow once only: a second grow to the same length would release by the longer length.)
    int d = drafts;
    bool grown = false;
    while (d > 0 && !(grown = kv_.grow(id, r.num_computed + n - drafts + d))) --d;
    const int n_step = n - drafts + d;
    while (!grown && !kv_.grow(id, r.num_computed + n_step)) {
      // Newest first; those come after i, so nothing scheduled earlier in this step is undone.
      const RequestId victim = running_.back();
      preempt(victim, out);
      if (victim == id) {
        scheduled = false;  // it was the newest itself: wait for blocks
        break;
      }
    }
    if (!scheduled) break;
    r.scheduled_drafts = d;
    out.seqs.push_back({id, r.num_computed, n_step,
                        r.num_computed + n_step - d == static_cast<int>(r.tokens.size()), d});
    budget -= n_step;
    ++i;
  }
}

void Scheduler::schedule_waiting(SchedulerOutput& out, int& budget) {
  while (!waiting_.empty() && budget > 0 && static_cast<int>(running_.size()) < cfg_.max_num_seqs) {
    const RequestId id = waiting_.front();
    Request& r = req(id);
    const int len = static_cast<int>(r.tokens.size());
    int cached =
        cfg_.enable_prefix_caching && !r.no_prefix_hit ? kv_.find_cached_prefix(r.tokens) : 0;
    if (cached > 0 && cfg_.prefix_cache_drop_last_block)
      cached = kv_.find_cached_prefix(r.tokens, cached - 1);
    const int remaining = len - cached;
    const int n = cfg_.enable_chunked_prefill ? std::min(remaining, budget) : remaining;
    // FIFO: a head that does not fit blocks the queue (vLLM breaks here too).
    if (n > budget || !kv_.can_admit(r.tokens, cached, cached + n)) break;
    kv_.add_sequence(id);
    if (cfg_.enable_prefix_caching) {
      kv_.attach_prefix(id, r.tokens, cached);
      prefix_query_tokens_ += len;
      prefix_hit_tokens_ += cached;
    }
    FC_CHECK(kv_.grow(id, cached + n), "Scheduler: request ", id, " did not fit after can_admit");
    waiting_.pop_front();
    running_.push_back(id);
    r.state = RequestState::kRunning;
    r.num_computed = cached;
    r.num_cached = cached;
    out.seqs.push_back({id, cached, n, cached + n == len});
    budget -= n;
  }
}

SchedulerOutput Scheduler::schedule() {
  for (RequestId id : finished_) {
    auto it = reqs_.find(id);  // gone if aborted since
    if (it != reqs_.end() && it->second.state == RequestState::kFinished) reqs_.erase(it);
  }
  finished_.clear();
  SchedulerOutput out;
  int budget = cfg_.max_num_batched_tokens;
  schedule_running(out, budget);
  if (out.preempted.empty()) schedule_waiting(out, budget);
  out.num_batched_tokens = cfg_.max_num_batched_tokens - budget;
  return out;
}

void Scheduler::on_step_done(const SchedulerOutput& out) {
  for (const ScheduledSeq& s : out.seqs) {
    auto it = reqs_.find(s.id);
    // Aborted or finished while the step ran: nothing to record.
    if (it == reqs_.end() || it->second.state != RequestState::kRunning) continue;
    Request& r = it->second;
    FC_CHECK(s.pos0 == r.num_computed, "Scheduler::on_step_done: request ", s.id,
             " step starts at ", s.pos0, " but ", r.num_computed, " tokens are computed");
    r.num_computed += s.num_tokens;
    // Only verified tokens enter the prefix cache (drafts are committed by accept_drafts).
    const int verified = std::min(r.num_computed, static_cast<int>(r.tokens.size()));
    if (cfg_.enable_prefix_caching) kv_.commit(s.id, r.tokens, verified);
  }
}

void Scheduler::append_token(RequestId id, int32_t token) {
  Request& r = req(id);
  FC_CHECK(r.state == RequestState::kRunning, "Scheduler::append_token: request ", id,
           " is not running");
  FC_CHECK(r.num_computed == static_cast<int>(r.tokens.size()), "Scheduler::append_token: request ",
           id, " has ", r.tokens.size() - static_cast<size_t>(r.num_computed),
           " tokens still to compute");
  FC_CHECK(static_cast<int>(r.tokens.size()) - r.num_prompt < r.max_tokens,
           "Scheduler::append_token: request ", id, " already has max_tokens ", r.max_tokens);
  r.tokens.push_back(token);
}

bool Scheduler::decode_ready(RequestId id) const {
  auto it = reqs_.find(id);
  return it != reqs_.end() && it->second.state == RequestState::kRunning &&
         it->second.num_computed + 1 == static_cast<int>(it->second.tokens.size());
}

void Scheduler::set_drafts(RequestId id, std::vector<int32_t> drafts) {
  Request& r = req(id);
  FC_CHECK(decode_ready(id), "Scheduler::set_drafts: request ", id, " is not decoding");
  // Never more drafts than tokens the request may still generate after the newest one.
  const int left = r.max_tokens - (static_cast<int>(r.tokens.size()) - r.num_prompt);
  if (static_cast<int>(drafts.size()) > left) drafts.resize(static_cast<size_t>(std::max(0, left)));
  r.drafts = std::move(drafts);
}

const std::vector<int32_t>& Scheduler::drafts(RequestId id) const {
  return req(id).drafts;
}

void Scheduler::accept_drafts(RequestId id, int num_accepted) {
  Request& r = req(id);
  FC_CHECK(r.state == RequestState::kRunning, "Scheduler::accept_drafts: request ", id,
           " is not running");
  const int d = r.scheduled_drafts;
  FC_CHECK(num_accepted >= 0 && num_accepted <= d, "Scheduler::accept_drafts: ", num_accepted,
           " of ", d, " drafts accepted for request ", id);
  FC_CHECK(r.num_computed == static_cast<int>(r.tokens.size()) + d,
           "Scheduler::accept_drafts: request ", id, " has no verified step in flight");
  r.tokens.insert(r.tokens.end(), r.drafts.begin(), r.drafts.begin() + num_accepted);
  r.num_computed = static_cast<int>(r.tokens.size());
  if (num_accepted < d) kv_.truncate(id, r.num_computed);  // rejected drafts leave the cache
  if (cfg_.enable_prefix_caching) kv_.commit(id, r.tokens, r.num_computed);
  r.drafts.clear();
  r.scheduled_drafts = 0;
}

RequestState Scheduler::state(RequestId id) const {
  return req(id).state;
}
const std::vector<int32_t>& Scheduler::tokens(RequestId id) const {
  return req(id).tokens;
}
int Scheduler::num_prompt_tokens(RequestId id) const {
  return req(id).num_prompt;
}
int Scheduler::num_computed(RequestId id) const {
  return req(id).num_computed;
}
int Scheduler::num_cached_prompt_tokens(RequestId id) const {
  return req(id).num_cached;
}
bool Scheduler::has_unfinished() const {
  return !running_.empty() || !waiting_.empty();
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  s.num_running = static_cast<int>(running_.size());
  s.num_waiting = static_cast<int>(waiting_.size());
  s.num_preemptions = num_preemptions_;
  s.prefix_query_tokens = prefix_query_tokens_;
  s.prefix_hit_tokens = prefix_hit_tokens_;
  return s;
}

}  // namespace fc
