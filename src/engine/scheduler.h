// Continuous-batching scheduler (vLLM V1 style): one token budget per step shared by prefill
// chunks and decode tokens, no separate phases. Pure bookkeeping over kv::KVManager block tables;
// testable without a model. The engine thread is its only user (not thread-safe).
//
// Terms: a request's `tokens` are its prompt followed by the tokens generated so far;
// `num_computed` of them have K/V in the cache. A step computes tokens [num_computed,
// num_computed + n) of each scheduled request. Logits are needed when a step reaches the end of
// `tokens` (then the engine samples the next token and calls append_token).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "engine/encoder_cache.h"
#include "kv/kv_manager.h"

namespace fc {

using RequestId = int64_t;

// A run of multimodal soft tokens in a prompt (an image, a video frame, an audio clip): its
// encoder output must be in the encoder cache before a step computes any of its positions.
struct MmRange {
  int offset = 0, length = 0;  // prompt positions [offset, offset + length)
  uint64_t key = 0;            // identity: encoder-cache key and prefix-cache block key (!= 0)
  bool no_split = false;       // computed in one step (bidirectional image blocks, 26B/31B)
};

struct SchedulerConfig {
  int max_num_seqs = 8;                // running requests at most
  int max_num_batched_tokens = 2048;   // tokens computed per step (prefill + decode)
  int max_model_len = 8192;            // prompt + generated, enforced at add()
  bool enable_chunked_prefill = true;  // false: a prompt is scheduled whole or not at all
  bool enable_prefix_caching = true;
  // A prefix-cache hit gives up its last block, which is recomputed: an EAGLE-3 drafter needs the
  // target hidden states of the positions just before the first new one, and its own cached KV
  // of a block depends on the token after the block (vLLM does the same when EAGLE is on,
  // vllm/v1/core/kv_cache_manager.py).
  bool prefix_cache_drop_last_block = false;
  // Multimodal (vLLM's encoder budget, vllm/multimodal/encoder_budget.py): embedding rows the
  // encoders may produce per step, and the encoder-output cache capacity in rows. Both are at
  // least the largest item's size (the engine computes them); 0 when there is no encoder.
  int64_t encoder_compute_budget = 0;
  int64_t encoder_cache_size = 0;
};

enum class RequestState { kWaiting, kRunning, kPreempted, kFinished };

struct ScheduledSeq {
  RequestId id = 0;
  int pos0 = 0;               // first position computed this step (== num_computed before the step)
  int num_tokens = 0;         // tokens computed this step (the last num_drafts are draft tokens)
  bool needs_logits = false;  // the step reaches the end of the request's tokens
  int num_drafts = 0;         // speculative tokens verified this step (see set_drafts)
  std::vector<int> encode;    // indices into mm(id) whose encoder runs this step
};

struct SchedulerOutput {
  std::vector<ScheduledSeq> seqs;    // in batch order
  std::vector<RequestId> preempted;  // moved back to waiting this step (blocks freed)
  std::vector<uint64_t> evicted;     // encoder-cache entries dropped (free their rows)
  int num_batched_tokens = 0;
  bool empty() const { return seqs.empty(); }
};

struct SchedulerStats {
  int num_running = 0, num_waiting = 0;
  int64_t num_preemptions = 0;
  int64_t prefix_query_tokens = 0, prefix_hit_tokens = 0;
  int64_t encoder_cache_queries = 0, encoder_cache_hits = 0;
};

class Scheduler {
 public:
  Scheduler(SchedulerConfig cfg, kv::KVManager& kv);

  // Queues a request (FIFO). Throws fc::Error if prompt is empty or prompt + max_tokens cannot fit
  // max_model_len / the KV capacity (the server turns that into a 400), or, without chunked
  // prefill, if a recompute of prompt + max_tokens - 1 tokens would not fit one step's budget.
  // no_prefix_hit: the prompt is always computed (its positions' logits are wanted).
  // mm: the prompt's soft-token runs, sorted and disjoint; their keys also name the prompt's
  // blocks in the prefix cache (the same tokens with another image never share KV). Throws for a
  // run that cannot ever be scheduled (longer than the encoder budget or cache, or a no_split run
  // longer than max_num_batched_tokens).
  void add(RequestId id, std::vector<int32_t> prompt, int max_tokens, bool no_prefix_hit = false,
           std::vector<MmRange> mm = {});
  // Removes a request in any state; its blocks are freed at once. Unknown ids are ignored.
  void abort(RequestId id);

  // Plans one step. Running requests first (oldest first), then waiting ones while the budget and
  // max_num_seqs allow. When blocks run out, the newest running request is preempted (recompute:
  // blocks freed, back to the front of the waiting queue) until the older one fits.
  SchedulerOutput schedule();

  // After the forward of `out`: marks the scheduled tokens computed (registering full blocks for
  // prefix caching). Then the engine calls append_token for every request that got logits.
  void on_step_done(const SchedulerOutput& out);
  void append_token(RequestId id, int32_t token);

  // Speculative decoding. A running request whose only uncomputed token is its newest sample
  // (decode_ready) may carry draft tokens: the next schedule() computes the newest token and as
  // many drafts as the budget, KV blocks and max_model_len allow, in one step (num_drafts of the
  // step's tokens). After on_step_done, accept_drafts(id, n) keeps the first n drafts (appended to
  // tokens) and rolls the KV back over the rejected ones; the engine then append_token()s the
  // recovered or bonus token. Drafts are dropped when the request is preempted.
  bool decode_ready(RequestId id) const;
  void set_drafts(RequestId id, std::vector<int32_t> drafts);
  const std::vector<int32_t>& drafts(RequestId id) const;
  void accept_drafts(RequestId id, int num_accepted);
  // Ends a request (stop token, max_tokens, stop string): frees its blocks. The record stays
  // readable (state kFinished, tokens) until the next schedule() forgets it, as vLLM reports
  // finished ids once; abort(id) may remove it earlier.
  void finish(RequestId id);

  RequestState state(RequestId id) const;
  const std::vector<MmRange>& mm(RequestId id) const;
  // Entries dropped outside schedule() (an encoder failed): the engine erases them here.
  EncoderCache& encoder_cache() { return enc_cache_; }
  const std::vector<int32_t>& tokens(RequestId id) const;
  int num_prompt_tokens(RequestId id) const;
  int num_computed(RequestId id) const;
  int num_cached_prompt_tokens(RequestId id) const;  // prefix-cache hit at (last) admission
  bool has_unfinished() const;
  SchedulerStats stats() const;

 private:
  struct Request {
    std::vector<int32_t> tokens;  // prompt, then generated tokens
    int num_prompt = 0;
    int max_tokens = 0;
    int num_computed = 0;  // tokens with K/V in the cache (== KV length after on_step_done)
    int num_cached = 0;    // prefix-cache hit at the last admission
    bool no_prefix_hit = false;
    RequestState state = RequestState::kWaiting;
    std::vector<int32_t> drafts;  // proposed, not yet verified (see set_drafts)
    int scheduled_drafts = 0;     // drafts computed by the step in flight
    std::vector<MmRange> mm;
    std::vector<uint64_t> block_keys;  // prefix-cache keys of the prompt's full blocks
  };
  Request& req(RequestId id);
  const Request& req(RequestId id) const;
  // Frees the request's blocks and leaves it in no queue.
  void drop_kv_and_queues(RequestId id, Request& r);
  // Running -> waiting front, blocks freed, to be recomputed from scratch (or the prefix cache).
  void preempt(RequestId id, SchedulerOutput& out);
  void schedule_running(SchedulerOutput& out, int& budget);
  void schedule_waiting(SchedulerOutput& out, int& budget);
  // Multimodal limit of a chunk [start, start + n): cut before a run whose encoder output can
  // neither be found nor produced this step, or that a no_split run would straddle. Returns the
  // new n and the runs to encode; changes nothing.
  int plan_mm(const Request& r, int start, int n, std::vector<int>& encode) const;
  // For a chunk that was scheduled: allocates and references the runs it uses.
  void commit_mm(RequestId id, const Request& r, int start, int n, const std::vector<int>& encode,
                 SchedulerOutput& out);
  const std::vector<uint64_t>* keys(const Request& r) const {
    return r.block_keys.empty() ? nullptr : &r.block_keys;
  }

  SchedulerConfig cfg_;
  kv::KVManager& kv_;
  std::unordered_map<RequestId, Request> reqs_;  // not aborted (finished: until next schedule)
  std::vector<RequestId> running_;               // admission order: oldest first
  std::deque<RequestId> waiting_;                // FIFO; preempted ones re-enter at the front
  std::vector<RequestId> finished_;              // records schedule() forgets
  int64_t num_preemptions_ = 0;
  int64_t prefix_query_tokens_ = 0, prefix_hit_tokens_ = 0;
  EncoderCache enc_cache_;
  int64_t enc_budget_ = 0;                        // left in the step being planned
  std::unordered_map<uint64_t, bool> step_keys_;  // runs encoded or used this step
};

}  // namespace fc
