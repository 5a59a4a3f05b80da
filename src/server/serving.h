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
#include "sample/constraints.h"
#include "sample/generation_config.h"
#include "server/media_request.h"
#include "server/metrics.h"
#include "server/model_files.h"
#include "server/openai_request.h"
#include "server/serve_options.h"
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
  // Every token's bytes, for JSON mode (response_format json_object); make_token_bytes().
  std::shared_ptr<const TokenBytes> token_bytes;
  // Multimodal content parts (server/media_request.h); null: the model takes text only.
  std::shared_ptr<const MediaContext> media;
};

// The bytes each token id decodes to: byte-fallback pieces (<0xNN>) as their byte, others
// decoded alone.
std::shared_ptr<const TokenBytes> make_token_bytes(const tok::Tokenizer& tok);

// Writes one SSE event payload (without "data: " framing); returns false when the client is
// gone, which aborts the request.
using SseSink = std::function<bool(const std::string& data)>;

// A streaming response whose request was already validated and submitted: run() writes every
// event. Destroying a job that did not run to the end aborts its engine requests.
class StreamJob {
 public:
  virtual ~StreamJob() = default;
  virtual void run(const SseSink& sink) = 0;
};

// All of these throw ApiError for client errors, before anything is written.
nlohmann::json serve_chat(ServingContext& ctx, const ChatRequest& req);
std::unique_ptr<StreamJob> start_chat_stream(ServingContext& ctx, const ChatRequest& req);
nlohmann::json serve_completion(ServingContext& ctx, const CompletionRequest& req);
std::unique_ptr<StreamJob> start_completion_stream(ServingContext& ctx,
                                                   const CompletionRequest& req);

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
