// Internal to the serving code (serving.cpp, serving_chat.cpp, serving_completion.cpp): one
// engine request per choice, the non-blocking drive over a job's choices, and the job base that
// owns them.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/output_processor.h"
#include "server/serving.h"
#include "server/structured_serving.h"

namespace fc::serving_detail {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::string random_id(const char* prefix);
int64_t now_unix();
// max_tokens for a prompt of prompt_len tokens (vLLM's rules; throws ApiError naming the field).
int resolve_limits(ServingContext& ctx, const CommonRequest& req, size_t prompt_len,
                   const char* prompt_param);
json vllm_prompt_logprobs(const tok::Tokenizer& tok, const std::vector<int32_t>& ids,
                          const std::vector<SampleResult>& lps);
void truncate_prompt(std::vector<int32_t>& ids, const CommonRequest& req, int max_model_len);

// One engine request per choice, sharing the prompt.
struct Choice {
  int index = 0;
  std::shared_ptr<RequestStream> stream;
  std::unique_ptr<OutputProcessor> out;
  bool done = false;
  int tokens = 0;
  int32_t last_token = -1;
  int spec_drafts = 0, spec_draft_tokens = 0, spec_accepted = 0;  // cumulative, from the engine
  int cached_tokens = 0;           // prompt tokens the engine served from the prefix cache
  std::vector<int32_t> token_ids;  // generated ids (return_token_ids)
  std::string finish_reason;
  json stop_reason = nullptr;
  bool keep_stop_token_text = false;  // include_stop_str_in_output
  // Non-streaming accumulation.
  std::string reasoning, content;
  std::vector<json> tool_calls;  // {"id","type","function":{"name","arguments"}}
  json logprobs = json::array();
  std::vector<SampleResult> prompt_logprobs;  // prompt positions 1.. (CommonRequest)
  Clock::time_point last_event;
};

// Submits req.n choices for one prompt (indices first_index..), each under `plan`'s constraint
// (structured_serving.h); on failure none stays submitted. `media`: the prompt's soft-token runs
// (PreparedChat::media), if any.
std::vector<Choice> submit_choices(ServingContext& ctx, const CommonRequest& req,
                                   const std::vector<int32_t>& ids, int max_tokens,
                                   const OutputOptions& oo, int first_index,
                                   const ConstraintPlan& plan,
                                   const std::vector<EngineMedia>* media = nullptr);
// Merges a step into a choice's non-streaming result.
void accumulate(Choice& c, const OutputStep& step, bool parallel_tool_calls);
json usage_json(int prompt_tokens, int completion_tokens);
void add_usage_details(const ServingContext& ctx, json& usage, const std::vector<Choice>& choices,
                       int n);

using OnStep = std::function<void(Choice& c, const OutputStep& step, bool finished)>;

// The SSE chunks of one streamed response: the id, object, created and model every chunk repeats,
// and whether the client still takes them.
class ChunkWriter {
 public:
  ChunkWriter(const char* id_prefix, std::string object, std::string model)
      : id_(random_id(id_prefix)),
        object_(std::move(object)),
        model_(std::move(model)),
        created_(now_unix()) {}
  // Writes one chunk {"id", "object", "created", "model", "choices"[, "usage"]
  // [, "prompt_token_ids"]}.
  void send(const SseSink& sink, json choices, const json* usage,
            const json* prompt_token_ids = nullptr);
  bool client_ok() const { return client_ok_; }

 private:
  std::string id_, object_, model_;
  int64_t created_;
  bool client_ok_ = true;
};

// A job's engine requests and their progress. Subclasses add the response format.
class JobBase : public ResponseJob {
 public:
  ~JobBase() override;
  void on_output(std::function<void()> wake) override;
  void abort() override;
  json result() override;  // streams: an internal error

 protected:
  explicit JobBase(ServingContext& ctx) : ctx_(ctx), start_(Clock::now()) {}
  // Adds choices (constructor only).
  void add_choices(std::vector<Choice> cs);
  // Handles the events pending now for every unfinished choice, calling on_step per output step;
  // true once every choice finished. Throws ApiError(500) on an engine error (all aborted).
  bool drive_pending(const OnStep& on_step);
  // Engine requests ended by abort() (or by the engine stopping).
  bool any_aborted() const;

  ServingContext& ctx_;
  Clock::time_point start_;
  std::vector<Choice> choices_;

 private:
  void abort_unfinished();
  bool first_token_ = true;
  size_t remaining_ = 0;
  std::atomic<bool> aborted_{false};
};

}  // namespace fc::serving_detail
