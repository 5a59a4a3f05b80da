// vLLM V1 scheduling (vllm/v1/core/sched/scheduler.py, Scheduler.schedule): one token budget per
// step; running requests first, oldest first, each taking min(remaining, budget) tokens and
// preempting the newest running request when its blocks cannot be allocated; then waiting
// requests in FIFO order, each starting from its longest cached prefix, unless this step
// preempted something (as vLLM does: freed blocks go to the running requests first).
#include "engine/scheduler.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace fc {

Scheduler::Scheduler(SchedulerConfig cfg, kv::KVManager& kv)
    : cfg_(cfg), kv_(kv), enc_cache_(cfg.encoder_cache_size) {
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

void Scheduler::add(RequestId id, std::vector<int32_t> prompt, int max_tokens, bool no_prefix_hit,
                    std::vector<MmRange> mm) {
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
  int prev_end = 0;
  for (const MmRange& m : mm) {
    FC_CHECK(m.length > 0 && m.offset >= prev_end &&
                 m.offset + m.length <= static_cast<int>(prompt.size()) && m.key != 0,
             "Scheduler::add: request ", id, " has a bad multimodal run [", m.offset, ", ",
             m.offset + m.length, ") in a prompt of ", prompt.size(), " tokens");
    prev_end = m.offset + m.length;
    FC_CHECK(m.length <= cfg_.encoder_compute_budget && m.length <= cfg_.encoder_cache_size,
             "Scheduler::add: a multimodal item of ", m.length,
             " soft tokens exceeds the encoder budget (", cfg_.encoder_compute_budget,
             ") or the encoder cache (", cfg_.encoder_cache_size, " rows)");
    // vLLM's startup check (disable_chunked_mm_input), per request here.
    FC_CHECK(!m.no_split || m.length <= cfg_.max_num_batched_tokens,
             "Chunked MM input disabled but max_tokens_per_mm_item=", m.length,
             " is larger than max_num_batched_tokens=", cfg_.max_num_batched_tokens);
  }
  Request r;
  if (!mm.empty()) {
    // Block b's key mixes the keys of every run overlapping it (its position in the run is implied
    // by the chain of block hashes).
    const int64_t B = kc.block_size;
    r.block_keys.assign(prompt.size() / static_cast<size_t>(B), 0);
    for (const MmRange& m : mm)
      for (int64_t b = m.offset / B;
           b < static_cast<int64_t>(r.block_keys.size()) && b * B < m.offset + m.length; ++b)
        r.block_keys[static_cast<size_t>(b)] =
            r.block_keys[static_cast<size_t>(b)] * 0x9e3779b97f4a7c15ull + m.key;
  }
  r.mm = std::move(mm);
  r.num_prompt = static_cast<int>(prompt.size());
  r.tokens = std::move(prompt);
  r.max_tokens = max_tokens;
  r.no_prefix_hit = no_prefix_hit;
  reqs_.emplace(id, std::move(r));
  waiting_.push_back(id);
}

void Scheduler::drop_kv_and_queues(RequestId id, Request& r) {
  enc_cache_.release(id);
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
  enc_cache_.release(id);   // encoder outputs stay cached too, evictable
  running_.erase(std::find(running_.begin(), running_.end(), id));
  r.state = RequestState::kPreempted;
  r.num_computed = 0;
  r.drafts.clear();
  r.scheduled_drafts = 0;
  waiting_.push_front(id);
  out.preempted.push_back(id);
  ++num_preemptions_;
}

int Scheduler::plan_mm(const Request& r, int start, int n, std::vector<int>& encode) const {
  encode.clear();
  int end = start + n;
  int64_t budget = enc_budget_, rows = 0;
  for (size_t i = 0; i < r.mm.size(); ++i) {
    const MmRange& m = r.mm[i];
    const int e = m.offset + m.length;
    if (e <= start) continue;  // computed already
    if (m.offset >= end) break;
    if (m.no_split && e > end) {  // would straddle the chunk end: stop before it
      end = std::max(start, m.offset);
      break;
    }
    if (enc_cache_.contains(m.key) || step_keys_.count(m.key)) continue;
    if (m.length > budget || !enc_cache_.can_allocate(rows + m.length)) {
      end = std::max(start, m.offset);  // wait for budget / cache space
      break;
    }
    budget -= m.length;
    rows += m.length;
    encode.push_back(static_cast<int>(i));
  }
  // Runs past the new end are not encoded.
  while (!encode.empty() && r.mm[static_cast<size_t>(encode.back())].offset >= end)
    encode.pop_back();
  return end - start;
}

void Scheduler::commit_mm(RequestId id, const Request& r, int start, int n,
                          const std::vector<int>& encode, SchedulerOutput& out) {
  size_t next = 0;
  for (size_t i = 0; i < r.mm.size(); ++i) {
    const MmRange& m = r.mm[i];
    if (m.offset + m.length <= start) continue;
    if (m.offset >= start + n) break;
    const bool enc = next < encode.size() && encode[next] == static_cast<int>(i);
    if (enc) {
      ++next;
      std::vector<uint64_t> ev = enc_cache_.allocate(m.key, m.length);
      out.evicted.insert(out.evicted.end(), ev.begin(), ev.end());
      enc_budget_ -= m.length;
    }
    if (m.offset >= start) enc_cache_.count_query(!enc);  // looked up when its first row is due
    enc_cache_.add_ref(m.key, id);
    step_keys_[m.key] = true;
  }
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
    int n = std::min(remaining, budget) + drafts;
    std::vector<int> encode;
    if (!r.mm.empty() && remaining > 1) n = plan_mm(r, r.num_computed, n - drafts, encode);
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
    if (!r.mm.empty()) commit_mm(id, r, r.num_computed, n_step - d, encode, out);
    out.seqs.push_back({id, r.num_computed, n_step,
                        r.num_computed + n_step - d == static_cast<int>(r.tokens.size()), d,
                        std::move(encode)});
    budget -= n_step;
    ++i;
  }
}

void Scheduler::schedule_waiting(SchedulerOutput& out, int& budget) {
  while (!waiting_.empty() && budget > 0 && static_cast<int>(running_.size()) < cfg_.max_num_seqs) {
    const RequestId id = waiting_.front();
    Request& r = req(id);
    const int len = static_cast<int>(r.tokens.size());
    const std::vector<uint64_t>* bk = keys(r);
    int cached = cfg_.enable_prefix_caching && !r.no_prefix_hit
                     ? kv_.find_cached_prefix(r.tokens, std::numeric_limits<int>::max(), bk)
                     : 0;
    if (cached > 0 && cfg_.prefix_cache_drop_last_block)
      cached = kv_.find_cached_prefix(r.tokens, cached - 1, bk);
    const int remaining = len - cached;
    int n = cfg_.enable_chunked_prefill ? std::min(remaining, budget) : remaining;
    std::vector<int> encode;
    if (!r.mm.empty()) {
      const int m = plan_mm(r, cached, n, encode);
      if (m < n && !cfg_.enable_chunked_prefill) break;  // the whole prompt or nothing
      n = m;
    }
    // FIFO: a head that does not fit blocks the queue (vLLM breaks here too).
    if (n <= 0 || n > budget || !kv_.can_admit(r.tokens, cached, cached + n, bk)) break;
    kv_.add_sequence(id);
    if (cfg_.enable_prefix_caching) {
      kv_.attach_prefix(id, r.tokens, cached, bk);
      prefix_query_tokens_ += len;
      prefix_hit_tokens_ += cached;
    }
    FC_CHECK(kv_.grow(id, cached + n), "Scheduler: request ", id, " did not fit after can_admit");
    waiting_.pop_front();
    running_.push_back(id);
    r.state = RequestState::kRunning;
    r.num_computed = cached;
    r.num_cached = cached;
    if (!r.mm.empty()) commit_mm(id, r, cached, n, encode, out);
    out.seqs.push_back({id, cached, n, cached + n == len, 0, std::move(encode)});
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
  enc_budget_ = cfg_.encoder_compute_budget;
  step_keys_.clear();
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
    if (cfg_.enable_prefix_caching) kv_.commit(s.id, r.tokens, verified, keys(r));
    // Runs computed: their encoder outputs become evictable (still cached), as vLLM frees a
    // request's encoder inputs once consumed.
    for (const MmRange& m : r.mm)
      if (m.offset + m.length <= r.num_computed) enc_cache_.release(m.key, s.id);
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
  if (cfg_.enable_prefix_caching) kv_.commit(id, r.tokens, r.num_computed, keys(r));
  r.drafts.clear();
  r.scheduled_drafts = 0;
}

RequestState Scheduler::state(RequestId id) const {
  return req(id).state;
}
const std::vector<MmRange>& Scheduler::mm(RequestId id) const {
  return req(id).mm;
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
  s.encoder_cache_queries = enc_cache_.queries();
  s.encoder_cache_hits = enc_cache_.hits();
  return s;
}

}  // namespace fc
