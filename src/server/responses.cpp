#include "server/responses.h"

#include <chrono>
#include <cstdio>
#include <thread>

#include "core/log.h"
#include "server/api_error.h"
#include "server/responses_events.h"
#include "server/responses_request.h"

namespace fc {

using nlohmann::json;

namespace {

std::string frame(const json& ev) {
  return "event: " + ev.value("type", std::string("message")) +
         "\ndata: " + ev.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

int64_t now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A float sampling value as a short decimal (0.95f reported as 0.95, not 0.949999988).
double tidy(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(v));
  return std::strtod(buf, nullptr);
}

ApiError not_found(const std::string& id, const char* param) {
  return ApiError(404, "Response with id '" + id + "' not found.", param);
}

// The Response object before any output (vLLM's ResponsesResponse.from_request).
json skeleton(const ServingContext& ctx, const ResponsesRequest& r, const ChatRequest& cr,
              const std::string& id) {
  SamplingParams sp;
  try {
    sp = resolve_sampling_params(cr.sampling, ctx.gen);
  } catch (const Error& e) {
    throw ApiError::bad_request(e.what());
  }
  return {{"id", id},
          {"object", "response"},
          {"created_at", now_unix()},
          {"status", r.background ? "queued" : "in_progress"},
          {"error", nullptr},
          {"incomplete_details", nullptr},
          {"instructions", r.instructions ? json(*r.instructions) : json(nullptr)},
          {"metadata", r.metadata},
          {"model", r.model.empty() ? ctx.model_name : r.model},
          {"output", json::array()},
          {"parallel_tool_calls", r.parallel_tool_calls},
          {"temperature", tidy(sp.temperature)},
          {"tool_choice", r.tool_choice},
          {"tools", r.tools},
          {"top_p", tidy(sp.top_p)},
          {"background", r.background},
          {"max_output_tokens", r.max_output_tokens ? json(*r.max_output_tokens) : json(nullptr)},
          {"max_tool_calls", r.max_tool_calls ? json(*r.max_tool_calls) : json(nullptr)},
          {"previous_response_id",
           r.previous_response_id ? json(*r.previous_response_id) : json(nullptr)},
          {"prompt", nullptr},
          {"reasoning", r.reasoning},
          {"service_tier", r.service_tier},
          {"text", r.text.is_null() ? json{{"format", {{"type", "text"}}}} : r.text},
          {"top_logprobs", r.top_logprobs},
          {"truncation", r.truncation},
          {"usage", nullptr},
          {"user", r.user}};
}

// Runs a started chat stream through the builder. `alive` is polled between steps; false stops
// generation (the chat job aborts its engine request). Returns false when stopped that way.
bool drive(StreamJob& chat, ResponseBuilder& b, const std::function<bool()>& alive) {
  bool stopped = false;
  chat.run([&](const std::string& data) {
    if (!alive()) {
      stopped = true;
      return false;
    }
    if (!data.empty()) b.chunk(json::parse(data));
    return true;
  });
  if (stopped) {
    b.cancelled();
    return false;
  }
  b.finish();
  return true;
}

// Runs a response to its end, turning failures after the start into the builder's error event.
// Returns the final status.
std::string run_to_end(StreamJob& chat, ResponseBuilder& b, const std::function<bool()>& alive) {
  b.start();
  try {
    drive(chat, b, alive);
  } catch (const ApiError& e) {
    b.fail(e.status(), e.what());
  } catch (const std::exception& e) {
    log_line(LogLevel::kError, std::string("response failed: ") + e.what());
    b.fail(500, std::string("internal error: ") + e.what());
  }
  return b.response().value("status", "failed");
}

// A background streaming response (or GET ?stream=true): replays the record's events after
// `next`, then follows it until it is done. The client leaving does not stop the response.
class RecordReader final : public StreamJob {
 public:
  RecordReader(std::shared_ptr<ResponseRecord> rec, size_t next)
      : rec_(std::move(rec)), next_(next) {}
  bool writes_frames() const override { return true; }
  void run(const SseSink& sink) override {
    for (;;) {
      std::vector<std::string> batch;
      bool done = false;
      {
        std::unique_lock<std::mutex> l(rec_->mu);
        rec_->cv.wait_for(l, std::chrono::milliseconds(100),
                          [&] { return rec_->events.size() > next_ || rec_->done; });
        for (; next_ < rec_->events.size(); ++next_) batch.push_back(rec_->events[next_]);
        done = rec_->done;
      }
      for (const std::string& f : batch)
        if (!sink(f)) return;
      if (done) return;
      if (batch.empty() && !sink("")) return;
    }
  }

 private:
  std::shared_ptr<ResponseRecord> rec_;
  size_t next_;
};

}  // namespace

struct ResponsesService::Run {
  std::string id;
  ResponsesRequest req;
  json messages;  // the history to store (without the instructions' system message)
  std::unique_ptr<StreamJob> chat;
  json skeleton;
  ResponseBuilderOptions bopt;
  std::shared_ptr<ResponseRecord> rec;  // background only
};

namespace {

// A streamed, not background, response: events straight to the client; stored at the end.
class ForegroundStream final : public StreamJob {
 public:
  using Store = std::function<void(const json& response)>;
  ForegroundStream(std::unique_ptr<StreamJob> chat, json skeleton, ResponseBuilderOptions o,
                   Store store)
      : chat_(std::move(chat)), skeleton_(std::move(skeleton)), o_(o), store_(std::move(store)) {}
  bool writes_frames() const override { return true; }
  void run(const SseSink& sink) override {
    bool ok = true;
    ResponseBuilder b(skeleton_, o_, [&](const json& ev) {
      if (ok) ok = sink(frame(ev));
    });
    const std::string status = run_to_end(*chat_, b, [&] { return ok && sink(""); });
    if (status != "failed" && status != "cancelled" && store_) store_(b.response());
  }

 private:
  std::unique_ptr<StreamJob> chat_;
  json skeleton_;
  ResponseBuilderOptions o_;
  Store store_;
};

}  // namespace

ResponsesStoreLimits responses_store_limits(const ServeOptions& o) {
  ResponsesStoreLimits l;
  l.max_entries = static_cast<size_t>(o.responses_store_max_entries);
  l.max_bytes = static_cast<size_t>(o.responses_store_max_mb) << 20;
  l.ttl_ms = int64_t{o.responses_store_ttl_s} * 1000;
  return l;
}

ResponsesService::ResponsesService(ServingContext& ctx, ResponsesStoreLimits limits)
    : ctx_(ctx), store_(limits) {}

ResponsesService::~ResponsesService() {
  std::unique_lock<std::mutex> l(bg_mu_);
  shutting_down_ = true;
  bg_cv_.wait(l, [&] { return bg_running_ == 0; });
}

std::shared_ptr<ResponseRecord> ResponsesService::find(const std::string& id, const char* param) {
  std::shared_ptr<ResponseRecord> rec = store_.get(id);
  if (!rec) throw not_found(id, param);
  return rec;
}

ResponsesService::Reply ResponsesService::create(const json& body,
                                                 const nlohmann::ordered_json& ordered) {
  auto run = std::make_shared<Run>();
  run->req = parse_responses_request(body, ordered);
  ResponsesRequest& r = run->req;
  if (!r.model.empty()) {
    bool known = false;
    for (const std::string& n : ctx_.opts.served_model_names) known |= n == r.model;
    if (!known) throw ApiError(404, "The model `" + r.model + "` does not exist.", "model");
  }
  if (r.background && !store_.enabled())
    throw ApiError::bad_request(
        "This server does not store responses (--responses-store-max-entries 0) and therefore "
        "does not support the background mode.",
        "background");

  // History: the previous response's messages and output, then this input.
  json history = json::array();
  if (r.previous_response_id) {
    std::shared_ptr<ResponseRecord> prev = find(*r.previous_response_id, "previous_response_id");
    std::lock_guard<std::mutex> l(prev->mu);
    if (!prev->done)
      throw ApiError::bad_request(
          "previous response '" + *r.previous_response_id + "' is still in progress",
          "previous_response_id");
    history = prev->messages;
    append_items_as_messages(prev->response.value("output", json::array()), history,
                             "previous_response.output");
  }
  for (const json& m : r.input_messages) history.push_back(m);
  json messages = json::array();
  if (r.instructions && !r.instructions->empty())
    messages.push_back({{"role", "system"}, {"content", *r.instructions}});
  for (const json& m : history) messages.push_back(m);

  const ChatRequest cr = responses_chat_request(r, messages);
  run->id = responses_random_id("resp_");
  run->messages = std::move(history);
  run->skeleton = skeleton(ctx_, r, cr, run->id);
  const tok::Gemma4Ids& g = ctx_.tok.gemma4_ids();
  run->bopt.logprobs = r.logprobs;
  run->bopt.channel_open = g.channel_open;
  run->bopt.channel_close = g.channel_close;
  run->bopt.turn_open = g.turn_open;
  run->bopt.tool_call_open = g.tool_call_open;

  if (r.background) {
    std::lock_guard<std::mutex> l(bg_mu_);
    if (shutting_down_) throw ApiError(503, "the server is stopping");
    if (bg_running_ >= kMaxBackground)
      throw ApiError(429, "too many background responses in progress (" +
                              std::to_string(kMaxBackground) + "); retry later");
  }
  // Validates the prompt against the limits and submits it to the engine.
  try {
    run->chat = start_chat_stream(ctx_, cr);
  } catch (const ApiError& e) {
    rethrow_as_responses_error(e);
  }

  auto store_result = [this, id = run->id, msgs = run->messages](const json& response) {
    auto rec = std::make_shared<ResponseRecord>();
    rec->response = response;
    rec->messages = msgs;
    if (!store_.put(id, rec, record_bytes(*rec)))
      log_line(LogLevel::kWarn, "response " + id + " not stored (larger than the store budget)");
  };

  Reply reply;
  if (r.background) {
    auto rec = std::make_shared<ResponseRecord>();
    rec->response = run->skeleton;
    rec->messages = run->messages;
    rec->keep_events = r.stream;
    rec->done = false;
    run->rec = rec;
    if (!store_.put(run->id, rec, record_bytes(*rec)))
      throw ApiError::bad_request("the request is larger than the response store's budget",
                                  "background");
    {
      std::lock_guard<std::mutex> l(bg_mu_);
      ++bg_running_;
    }
    std::thread([this, run] { run_background(run); }).detach();
    if (r.stream)
      reply.stream = std::make_unique<RecordReader>(rec, 0);
    else
      reply.body = run->skeleton;
    return reply;
  }
  if (r.stream) {
    reply.stream = std::make_unique<ForegroundStream>(
        std::move(run->chat), run->skeleton, run->bopt,
        r.store && store_.enabled() ? ForegroundStream::Store(store_result) : nullptr);
    return reply;
  }
  ResponseBuilder b(run->skeleton, run->bopt, nullptr);
  b.start();
  drive(*run->chat, b, [] { return true; });  // engine errors: ApiError(500) to the client
  reply.body = b.response();
  if (r.store && store_.enabled()) store_result(reply.body);
  return reply;
}

void ResponsesService::run_background(std::shared_ptr<Run> run) {
  ResponseRecord& rec = *run->rec;
  {
    std::lock_guard<std::mutex> l(rec.mu);
    rec.response["status"] = "in_progress";
  }
  ResponseBuilder b(run->skeleton, run->bopt, [&](const json& ev) {
    std::lock_guard<std::mutex> l(rec.mu);
    if (rec.keep_events) rec.events.push_back(frame(ev));
    rec.cv.notify_all();
  });
  const auto alive = [&] {
    if (rec.cancel.load()) return false;
    std::lock_guard<std::mutex> l(bg_mu_);
    return !shutting_down_;
  };
  run_to_end(*run->chat, b, alive);
  run->chat.reset();  // ends the engine request if it is still running
  size_t bytes = 0;
  {
    std::lock_guard<std::mutex> l(rec.mu);
    rec.response = b.response();
    if (rec.cancel.load()) rec.response["status"] = "cancelled";
    rec.done = true;
    bytes = record_bytes(rec);
    rec.cv.notify_all();
  }
  store_.resize(run->id, bytes);
  std::lock_guard<std::mutex> l(bg_mu_);
  --bg_running_;
  bg_cv_.notify_all();
}

ResponsesService::Reply ResponsesService::retrieve(const std::string& id, const std::string& stream,
                                                   const std::string& starting_after) {
  std::shared_ptr<ResponseRecord> rec = find(id, "response_id");
  if (!stream.empty() && stream != "true" && stream != "false")
    throw ApiError::bad_request("stream: must be true or false", "stream");
  Reply reply;
  if (stream != "true") {
    std::lock_guard<std::mutex> l(rec->mu);
    reply.body = rec->response;
    return reply;
  }
  int64_t after = -1;
  if (!starting_after.empty()) {
    try {
      size_t used = 0;
      after = std::stoll(starting_after, &used);
      if (used != starting_after.size() || after < -1) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw ApiError::bad_request("starting_after: must be an integer >= -1", "starting_after");
    }
  }
  {
    std::lock_guard<std::mutex> l(rec->mu);
    if (!rec->keep_events)
      throw ApiError::bad_request(
          "stream=true is only available for background responses created with stream=true",
          "stream");
  }
  reply.stream = std::make_unique<RecordReader>(rec, static_cast<size_t>(after + 1));
  return reply;
}

json ResponsesService::remove(const std::string& id) {
  std::shared_ptr<ResponseRecord> rec = find(id, "response_id");
  rec->cancel = true;  // a running background response stops
  store_.erase(id);
  return {{"id", id}, {"object", "response"}, {"deleted", true}};
}

json ResponsesService::cancel(const std::string& id) {
  std::shared_ptr<ResponseRecord> rec = find(id, "response_id");
  std::unique_lock<std::mutex> l(rec->mu);
  const std::string status = rec->response.value("status", "");
  if (status != "queued" && status != "in_progress")
    throw ApiError::bad_request("Cannot cancel a synchronous response.", "response_id");
  rec->cancel = true;
  // The job stops at its next step (one decode step at most); wait for it a while.
  rec->cv.wait_for(l, std::chrono::seconds(10), [&] { return rec->done; });
  rec->response["status"] = "cancelled";
  return rec->response;
}

std::string ResponsesService::metrics_text() const {
  const ResponsesStoreStats s = store_.stats();
  std::string out;
  auto line = [&](const char* name, const char* type, const char* help, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + buf + "\n";
  };
  line("fourcast:responses_stored", "gauge", "Responses held in the response store.",
       static_cast<double>(s.entries));
  line("fourcast:responses_store_bytes", "gauge",
       "Bytes the response store accounts for (JSON text of responses, histories, events).",
       static_cast<double>(s.bytes));
  line("fourcast:responses_evicted_total", "counter",
       "Stored responses evicted by the entry cap or the byte budget.",
       static_cast<double>(s.evicted));
  line("fourcast:responses_expired_total", "counter", "Stored responses dropped after the TTL.",
       static_cast<double>(s.expired));
  return out;
}

}  // namespace fc
