// The OpenAI Responses API (/v1/responses) on top of the chat path, independent of the HTTP
// library (like serving.h): create (plain, streamed, background), retrieve, delete, cancel,
// with the bounded store of responses_store.h. Behaviour follows
// [vllm-project/vllm: vllm/entrypoints/openai/responses/serving.py `OpenAIServingResponses`,
// api_router.py] except where noted in docs/design.md (bounded store on by default, DELETE,
// previous_response_id carrying function calls and reasoning).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "server/responses_store.h"
#include "server/serving.h"

namespace fc {

// The store limits the serve flags describe (--responses-store-max-entries, -max-mb, -ttl).
ResponsesStoreLimits responses_store_limits(const ServeOptions& o);

class ResponsesService {
 public:
  ResponsesService(ServingContext& ctx, ResponsesStoreLimits limits);
  // Cancels running background responses and waits for them.
  ~ResponsesService();

  // A JSON body, or (stream) a job writing SSE frames (StreamJob::writes_frames()).
  struct Reply {
    nlohmann::json body;
    std::unique_ptr<StreamJob> stream;
  };
  // POST /v1/responses. Throws ApiError before anything is written.
  Reply create(const nlohmann::json& body, const nlohmann::ordered_json& ordered);
  // GET /v1/responses/{id}; query values as sent ("" when absent).
  Reply retrieve(const std::string& id, const std::string& stream,
                 const std::string& starting_after);
  // DELETE /v1/responses/{id}: {"id", "object": "response", "deleted": true}.
  nlohmann::json remove(const std::string& id);
  // POST /v1/responses/{id}/cancel (background responses only, as vLLM).
  nlohmann::json cancel(const std::string& id);
  // Prometheus lines for the store (appended to /metrics).
  std::string metrics_text() const;

  static constexpr int kMaxBackground = 256;

 private:
  struct Run;
  void run_background(std::shared_ptr<Run> run);
  std::shared_ptr<ResponseRecord> find(const std::string& id, const char* param);

  ServingContext& ctx_;
  ResponsesStore store_;
  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  int bg_running_ = 0;
  bool shutting_down_ = false;
};

}  // namespace fc
