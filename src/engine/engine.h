// The engine: one thread that owns the scheduler, the KV cache and the model, and runs steps
// (schedule -> one batched forward -> sample -> emit) while requests arrive and leave from other
// threads. Requests and results cross the thread boundary only through submit()/abort() and each
// request's RequestStream.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/scheduler.h"
#include "kv/kv_manager.h"
#include "kv/kv_storage.h"
#include "model/gemma4/media.h"
#include "model/gemma4/model.h"
#include "sample/sampler.h"
#include "spec/drafter.h"
#include "spec/policy.h"
#include "spec/rejection.h"
#include "spec/session.h"

namespace fc {

struct EngineConfig {
  SchedulerConfig scheduler;
  int block_size = 16;
  int64_t kv_tokens = 16384;  // full-attention KV capacity in tokens (sliding group sized to fit)
  int64_t kv_sliding_tokens = 0;  // > 0: sliding-group capacity (engine/kv_plan.h); 0: to fit
  int max_rollback = 0;
  DType kv_dtype = DType::kF32;  // KV cache storage: F32, BF16 or F8_E4M3
  // Speculative decoding: builds the drafter once the target's KV storage exists (the MTP
  // assistant reads it); empty = off. The policy chooses k per request and step (spec/policy.h).
  std::function<std::unique_ptr<spec::Drafter>(const kv::KVStorage& target_kv)> make_drafter;
  spec::PolicyConfig spec_policy;
  // Multimodal encoders (not owned), each serving its modalities() — the vision tower for
  // "image" / "video", an audio tower for "audio". A request with media of another modality is
  // refused. scheduler.encoder_compute_budget / encoder_cache_size size the encoder step (0:
  // max_num_batched_tokens).
  std::vector<gemma4::MediaEncoder*> encoders;
};

// One media item of a request: `input->num_tokens` soft-token placeholders of the prompt starting
// at `offset` get the encoder's output rows.
struct EngineMedia {
  std::shared_ptr<const gemma4::MediaInput> input;
  uint64_t key = 0;            // identity (content hash + processor kwargs, or the client uuid)
  int offset = 0;              // prompt index of the first soft token
  bool bidirectional = false;  // an image block of a "vision"-bidirectional model (one step)
};

struct EngineRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int max_tokens = 16;
  std::vector<int32_t> stop_token_ids;  // generation ends after one of these (eos included here)
  std::optional<LogprobsOptions> logprobs;
  int num_speculative_tokens = -1;  // per-request override: < 0 server policy, 0 off, k > 0 fixed
  // >= 0: report the logprob of every prompt token after the first with that many alternatives
  // (vLLM's prompt_logprobs, from the raw log-softmax); such a prompt is always computed whole,
  // never served from the prefix cache. max_tokens may be 0: the prompt only (with its logprobs).
  int prompt_logprobs = -1;
  std::vector<EngineMedia> media;  // in prompt order, disjoint
};

// What the engine reports for a request after a step (or at its end).
struct RequestEvent {
  std::vector<int32_t> tokens;         // tokens generated since the last event
  std::vector<SampleResult> logprobs;  // one per token when logprobs were requested
  // prompt_logprobs: entries for the next prompt positions (1, 2, ... over all events; token =
  // the prompt token at that position), as prefill chunks compute them.
  std::vector<SampleResult> prompt_logprobs;
  bool finished = false;
  std::string finish_reason;  // "stop", "length", "abort", "error"
  std::string error;          // set with finish_reason "error"
  int num_prompt_tokens = 0;
  int num_cached_tokens = 0;  // prompt tokens served from the prefix cache
  // Speculative decoding so far for this request (cumulative): verification steps with drafts,
  // draft tokens proposed, drafts accepted.
  int spec_drafts = 0, spec_draft_tokens = 0, spec_accepted_tokens = 0;
};

// A request's result channel: the engine pushes; the consumer pops (next(0) never blocks), and
// may register a notify function so that it need not wait in a thread (the HTTP server).
class RequestStream {
 public:
  explicit RequestStream(RequestId id) : id_(id) {}
  RequestId id() const { return id_; }
  // Waits up to `timeout_ms` for events; returns all pending ones merged (tokens concatenated),
  // or nullopt on timeout. After the finished event, returns nullopt forever.
  std::optional<RequestEvent> next(int timeout_ms);
  void push(RequestEvent ev);
  // `notify` is called (on the engine thread, under this stream's lock: it must be quick and
  // must not call back into the stream) after every push; null clears it. Once set_notify
  // returns, the previous function is never called again.
  void set_notify(std::function<void()> notify);

 private:
  RequestId id_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestEvent> q_;
  bool done_ = false;
  std::function<void()> notify_;
};

struct EngineStats {
  int running = 0, waiting = 0;
  int64_t preemptions = 0;
  int64_t prompt_tokens = 0, generation_tokens = 0;
  int64_t prefix_query_tokens = 0, prefix_hit_tokens = 0;
  int kv_blocks_total = 0, kv_blocks_free = 0;  // full-attention group
  int64_t steps = 0;
  // Speculative decoding (vLLM's spec_decode counters): verification steps that carried drafts,
  // draft tokens verified, drafts accepted, and accepted drafts by position in the chain.
  int64_t spec_drafts = 0, spec_draft_tokens = 0, spec_accepted_tokens = 0;
  std::vector<int64_t> spec_accepted_per_pos;
  std::string spec_method;  // "" when off
  // Multimodal: items whose encoder ran, and encoder-cache lookups / hits.
  int64_t mm_items_encoded = 0, encoder_cache_queries = 0, encoder_cache_hits = 0;
};

class Engine {
 public:
  Engine(gemma4::Model& model, Backend& backend, const EngineConfig& cfg);
  ~Engine();  // stops the thread; unfinished requests end with finish_reason "abort"
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; throws fc::Error (a client error) when it can never fit.
  std::shared_ptr<RequestStream> submit(EngineRequest req);
  // Cancels a request (client gone): its blocks are freed by the next step at the latest.
  void abort(RequestId id);
  // Stops accepting work; with `drain`, waits until running requests finish.
  void shutdown(bool drain);
  EngineStats stats() const;
  // False once the engine thread has stopped (shutdown or a fatal error): /health answers 503.
  bool alive() const;
  // False once shutdown() was called: submit() refuses new requests.
  bool accepting() const;
  int max_model_len() const { return cfg_.scheduler.max_model_len; }

 private:
  struct Live {
    EngineRequest req;
    std::shared_ptr<RequestStream> stream;
    std::unique_ptr<SamplerState> sampler;
    int generated = 0;
    int prompt_lp_next = 1;  // next prompt position whose logprob is to be reported
    int spec_drafts = 0, spec_draft_tokens = 0, spec_accepted_tokens = 0;
  };
  void loop();
  void step();
  // Speculative decoding (engine_spec.cpp): drafts for every decoding request before scheduling;
  // verification of one scheduled request's k+1 logit rows; hidden rows to the drafter.
  void propose_drafts();
  void verify_seq(const ScheduledSeq& s, const float* logits, Live& live, RequestEvent& ev);
  void observe_step(const SchedulerOutput& plan, const std::vector<int>& verified);
  void release_draft(RequestId id);
  // Multimodal (engine_mm.cpp): runs this step's encoders into enc_out_ (requests whose encoder
  // fails are finished with the error; returns false if a scheduled one was), and attaches the
  // soft tokens and image blocks of a chunk to its forward input.
  void run_encoders(const SchedulerOutput& plan);
  void attach_media(const ScheduledSeq& s, gemma4::SeqInput& in);
  gemma4::MediaEncoder* encoder_for(const std::string& modality) const;
  void finish(RequestId id, Live& live, const std::string& reason, const std::string& error = {});

  gemma4::Model& model_;
  Backend& backend_;
  EngineConfig cfg_;
  kv::KVManager kv_;
  std::unique_ptr<kv::KVStorage> storage_;
  std::unique_ptr<Scheduler> sched_;
  SamplerScratch scratch_;
  gemma4::ForwardOutput out_;
  std::unique_ptr<spec::Drafter> drafter_;
  std::unique_ptr<spec::SpecPolicy> policy_;
  spec::VerifyResult verify_;
  int64_t spec_drafts_ = 0, spec_draft_tokens_ = 0, spec_accepted_ = 0;  // engine thread
  std::vector<int64_t> spec_per_pos_;
  std::unordered_map<uint64_t, std::vector<float>> enc_out_;  // encoder cache rows (engine thread)
  int64_t mm_items_encoded_ = 0;

  mutable std::mutex mu_;  // guards the inbox, aborts, stats and stop flags
  std::condition_variable cv_;
  std::vector<std::pair<RequestId, Live>> inbox_;
  std::vector<RequestId> aborts_;
  bool stop_ = false, draining_ = false;
  RequestId next_id_ = 1;
  EngineStats stats_;
  std::unordered_map<RequestId, Live> live_;  // engine thread only
  std::thread thread_;
};

}  // namespace fc
