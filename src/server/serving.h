// OpenAI chat/completions serving on top of the engine, independent of the HTTP library: a
// request is prepared (template, tokenize, limits), submitted as n engine requests, and its
// results are written as one JSON body or as SSE events through a sink.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "engine/engine.h"
#include "grammar/compiler.h"
#include "sample/generation_config.h"
#include "server/media_request.h"
#include "server/metrics.h"
#include "server/model_files.h"
#include "server/openai_request.h"
#include "server/serve_options.h"
#include "server/structured_request.h"
#include "tokenizer/tokenizer.h"

namespace fc {

struct ServingContext {
  const ServeOptions& opts;
  const tok::Tokenizer& tok;
  const chat::Template& tmpl;
  const ChatTemplateSource& tmpl_src;
  const GenerationConfig& gen;
  Engine& engine;
  Metrics& metrics;
  std::vector<int32_t> eos_ids;  // primary EOS first (its stop_reason is null)
  std::string model_name;        // first served name
  int max_model_len = 0;
  // Structured outputs: the compiler (and compile cache) over this vocabulary, and
  // --structured-outputs-config (structured_serving.h).
  std::shared_ptr<grammar::ConstraintCompiler> constraints;
  StructuredOutputsConfig structured_config;
  // Multimodal content parts (server/media_request.h); null: the model takes text only.
  std::shared_ptr<const MediaContext> media;
};

// Writes one SSE event payload (without "data: " framing); returns false when the client is
// gone, which aborts the request.
using SseSink = std::function<bool(const std::string& data)>;

// A chat or completions response in progress. Creating one validates the request, renders and
// tokenizes the prompt and submits its n engine requests (throwing ApiError for client errors
// before anything is submitted); from then on it is event-driven and no thread waits on it:
// the engine calls the function given to on_output() whenever output is pending, and the owner
// then calls pump() (from one thread at a time).
class ResponseJob {
 public:
  // Aborts the engine requests still running; they count as finished_reason "abort".
  virtual ~ResponseJob() = default;
  virtual bool streaming() const = 0;
  // Streaming: whether pump() writes whole SSE frames itself ("event: TYPE\ndata: JSON\n\n", as
  // the Responses API streams, without a [DONE] terminator) rather than payloads the HTTP layer
  // frames as "data: ...\n\n" and ends with "data: [DONE]".
  virtual bool writes_frames() const { return false; }
  // `wake` is called from the engine thread (quick, must not call back into the job) whenever
  // an engine request of this job has new output. Call pump() once after setting it.
  virtual void on_output(std::function<void()> wake) = 0;
  // Handles the output pending now, without blocking. Streaming: writes SSE event payloads
  // through `sink` (the terminating [DONE] is the caller's). Returns true once the response is
  // complete. Throws ApiError when it failed (an engine error: 500).
  virtual bool pump(const SseSink& sink) = 0;
  // Non-streaming, once pump() returned true: the response body. Throws ApiError: 503 when the
  // engine requests were aborted (server shutdown) - never a success with truncated output.
  virtual nlohmann::json result() = 0;
  // Aborts every engine request of the job; thread-safe (the client left, the server stops).
  // pump() then sees them end as aborted.
  virtual void abort() = 0;
};

// Both throw ApiError for client errors, before anything is submitted. req.stream picks an
// SSE job or a JSON one.
std::unique_ptr<ResponseJob> start_chat(ServingContext& ctx, const ChatRequest& req);
std::unique_ptr<ResponseJob> start_completion(ServingContext& ctx, const CompletionRequest& req);

// Blocking convenience for callers without an event loop (tests, tools): runs a job to its end
// on the calling thread, streaming through `sink` when it streams, and returns result() (null
// for streams).
nlohmann::json run_to_end(ResponseJob& job, const SseSink& sink = {});

// The rendered prompt and its ids (for /tokenize and the chat path).
struct PreparedChat {
  std::string prompt;
  std::vector<int32_t> ids;
  bool start_in_reasoning = false;
  std::string forced_prefix;       // tool_choice required/named: text appended to the prompt
  std::vector<EngineMedia> media;  // soft-token runs of the media parts (ids expanded)
};
PreparedChat prepare_chat(ServingContext& ctx, const ChatRequest& req);

}  // namespace fc
