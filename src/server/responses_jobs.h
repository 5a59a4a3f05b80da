// The Responses API's event-driven jobs (server/serving.h's ResponseJob), so that no request -
// and no background response - holds a thread while the engine generates:
//  - a foreground response (POST /v1/responses without background): the chat stream job's
//    chunks through a ResponseBuilder, pumped by the HTTP layer whenever the engine has output;
//    streamed as `event: TYPE\ndata: JSON` frames, or one JSON body at the end;
//  - a record follower: replays and follows a stored background response's frames (background
//    streams, GET ?stream=true), or waits for its end (POST .../cancel);
//  - background responses, run detached by one BackgroundRunner thread that pumps whichever run
//    the engine woke (non-blocking pumps, so one thread serves them all), at most a fixed
//    number at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unordered_map>

#include "server/responses_events.h"
#include "server/responses_store.h"
#include "server/serving.h"

namespace fc {

// One SSE frame of the Responses stream: "event: TYPE\ndata: JSON\n\n".
std::string responses_frame(const nlohmann::json& event);

// A response ready to run: its id, the started chat stream job (submitted to the engine; it
// streams chat.completion.chunk payloads with usage and token ids), the Response object before
// any output, and the builder's options.
struct ResponseRun {
  std::string id;
  std::unique_ptr<ResponseJob> chat;
  nlohmann::json skeleton;
  ResponseBuilderOptions bopt;
};

// Stores a finished response (its Response object); may be empty (store off).
using StoreResponse = std::function<void(const nlohmann::json& response)>;

// A foreground response. stream: SSE frames from response.created to response.completed (an
// `error` event instead when the engine failed, or when the server stopped before the end);
// otherwise one JSON body, or ApiError(503) when aborted - never a truncated success. Stored
// through `store` when it completed (or ended incomplete at max_output_tokens).
std::unique_ptr<ResponseJob> make_foreground_job(ResponseRun run, bool stream, StoreResponse store);

// Follows a stored record. stream: its frames from index `next` on as they come, until it is
// done; otherwise, once it is done, result() is its Response object (cancel). Ending it (the
// client left, the server stops) never affects the background response itself.
std::unique_ptr<ResponseJob> make_record_job(std::shared_ptr<ResponseRecord> rec, bool stream,
                                             size_t next);

// Runs background responses detached from any request: one thread pumps the runs the engine
// (or a cancel) woke. Each run updates its record (events when kept, the final Response object)
// and re-accounts the record's size in the store as it grows.
class BackgroundRunner {
 public:
  BackgroundRunner(std::shared_ptr<ResponsesStore> store, size_t max_running);
  // Stops the thread; runs still going are aborted and end "cancelled".
  ~BackgroundRunner();
  BackgroundRunner(const BackgroundRunner&) = delete;
  BackgroundRunner& operator=(const BackgroundRunner&) = delete;

  // Throws ApiError 429 when max_running runs are going, 503 once stopping.
  void check_capacity() const;
  // Takes over `run`, whose record (status "queued", done false) is already stored; starts it.
  // Throws as check_capacity().
  void add(ResponseRun run, std::shared_ptr<ResponseRecord> rec);
  // Makes run `id` act on its record's cancel flag now; false when no such run is going.
  bool wake(const std::string& id);
  size_t running() const;

 private:
  struct Run;
  void check_capacity_locked() const;
  void enqueue(const std::shared_ptr<Run>& run);
  void loop();
  // Pumps one run; true once it finished (its record done).
  bool step(Run& run);
  // Ends the run: its chat job destroyed, its record final (status "cancelled" when flagged).
  void finish(Run& run);

  std::shared_ptr<ResponsesStore> store_;
  size_t max_running_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Run>> ready_;
  std::unordered_map<std::string, std::shared_ptr<Run>> runs_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace fc
