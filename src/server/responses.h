// The OpenAI Responses API (/v1/responses) on top of the chat path, independent of the HTTP
// library (like serving.h): create (plain, streamed, background), retrieve, delete, cancel,
// with the bounded store of responses_store.h. Behaviour follows
// [vllm-project/vllm: vllm/entrypoints/openai/responses/serving.py `OpenAIServingResponses`,
// api_router.py] except where noted in docs/design.md (bounded store on by default, DELETE,
// previous_response_id carrying function calls and reasoning).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "server/responses_jobs.h"
#include "server/responses_store.h"
#include "server/serving.h"

namespace fc {

// The store limits the serve flags describe (--responses-store-max-entries, -max-mb, -ttl).
ResponsesStoreLimits responses_store_limits(const ServeOptions& o);

// Every method is non-blocking: what has to wait for the engine (a foreground response, a
// background stream, a cancel waiting for its run to stop) comes back as a ResponseJob that the
// HTTP layer pumps when woken, like a chat job.
class ResponsesService {
 public:
  ResponsesService(ServingContext& ctx, ResponsesStoreLimits limits);
  // Aborts running background responses (they end "cancelled").
  ~ResponsesService();

  // A JSON body at once, or a job: streaming() ones write SSE frames (writes_frames()), the
  // others' result() is the body.
  struct Reply {
    nlohmann::json body;
    std::unique_ptr<ResponseJob> job;
  };
  // POST /v1/responses. Throws ApiError before anything is submitted.
  Reply create(const nlohmann::json& body, const nlohmann::ordered_json& ordered);
  // GET /v1/responses/{id}; query values as sent ("" when absent).
  Reply retrieve(const std::string& id, const std::string& stream,
                 const std::string& starting_after);
  // DELETE /v1/responses/{id}: {"id", "object": "response", "deleted": true}.
  nlohmann::json remove(const std::string& id);
  // POST /v1/responses/{id}/cancel (background responses only, as vLLM): a job whose result()
  // is the response once its run stopped.
  Reply cancel(const std::string& id);
  // Prometheus lines for the store (appended to /metrics).
  std::string metrics_text() const;

  static constexpr int kMaxBackground = 256;  // background responses running at once

 private:
  std::shared_ptr<ResponseRecord> find(const std::string& id, const char* param);

  ServingContext& ctx_;
  std::shared_ptr<ResponsesStore> store_;  // shared with the jobs that store into it
  BackgroundRunner background_;            // destroyed first: its runs use store_
};

}  // namespace fc
