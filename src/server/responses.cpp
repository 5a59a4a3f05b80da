#include "server/responses.h"

#include <chrono>
#include <cstdio>

#include "core/log.h"
#include "server/api_error.h"
#include "server/responses_events.h"
#include "server/responses_request.h"

namespace fc {

using nlohmann::json;

namespace {

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

// The record's Response object as it stands.
json rec_response(ResponseRecord& rec) {
  std::lock_guard<std::mutex> l(rec.mu);
  return rec.response;
}

}  // namespace

ResponsesStoreLimits responses_store_limits(const ServeOptions& o) {
  ResponsesStoreLimits l;
  l.max_entries = static_cast<size_t>(o.responses_store_max_entries);
  l.max_bytes = static_cast<size_t>(o.responses_store_max_mb) << 20;
  l.ttl_ms = int64_t{o.responses_store_ttl_s} * 1000;
  return l;
}

ResponsesService::ResponsesService(ServingContext& ctx, ResponsesStoreLimits limits)
    : ctx_(ctx),
      store_(std::make_shared<ResponsesStore>(limits)),
      background_(store_, kMaxBackground) {}

ResponsesService::~ResponsesService() = default;

std::shared_ptr<ResponseRecord> ResponsesService::find(const std::string& id, const char* param) {
  std::shared_ptr<ResponseRecord> rec = store_->get(id);
  if (!rec) throw not_found(id, param);
  return rec;
}

ResponsesService::Reply ResponsesService::create(const json& body,
                                                 const nlohmann::ordered_json& ordered) {
  const ResponsesRequest r = parse_responses_request(body, ordered);
  if (!r.model.empty()) {
    bool known = false;
    for (const std::string& n : ctx_.opts.served_model_names) known |= n == r.model;
    if (!known) throw ApiError(404, "The model `" + r.model + "` does not exist.", "model");
  }
  if (r.background && !store_->enabled())
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
  ResponseRun run;
  run.id = responses_random_id("resp_");
  run.skeleton = skeleton(ctx_, r, cr, run.id);
  const tok::Gemma4Ids& g = ctx_.tok.gemma4_ids();
  run.bopt.logprobs = r.logprobs;
  run.bopt.channel_open = g.channel_open;
  run.bopt.channel_close = g.channel_close;
  run.bopt.turn_open = g.turn_open;
  run.bopt.tool_call_open = g.tool_call_open;

  if (r.background) background_.check_capacity();  // before anything reaches the engine
  // Validates the prompt against the limits and submits it to the engine (a chat stream job
  // with usage and token ids: responses_chat_request).
  try {
    run.chat = start_chat(ctx_, cr);
  } catch (const ApiError& e) {
    rethrow_as_responses_error(e);
  }

  Reply reply;
  if (r.background) {
    auto rec = std::make_shared<ResponseRecord>();
    rec->response = run.skeleton;
    rec->messages = std::move(history);
    rec->keep_events = r.stream;
    rec->done = false;
    const std::string id = run.id;
    if (!store_->put(id, rec, record_bytes(*rec)))
      throw ApiError::bad_request("the request is larger than the response store's budget",
                                  "background");
    try {
      background_.add(std::move(run), rec);
    } catch (...) {
      store_->erase(id);
      throw;
    }
    if (r.stream)
      reply.job = make_record_job(rec, true, 0);
    else
      reply.body = rec_response(*rec);
    return reply;
  }
  StoreResponse store;
  if (r.store && store_->enabled())
    store = [st = store_, id = run.id, msgs = std::move(history)](const json& response) {
      auto rec = std::make_shared<ResponseRecord>();
      rec->response = response;
      rec->messages = msgs;
      if (!st->put(id, rec, record_bytes(*rec)))
        log_line(LogLevel::kWarn, "response " + id + " not stored (larger than the store budget)");
    };
  reply.job = make_foreground_job(std::move(run), r.stream, std::move(store));
  return reply;
}

ResponsesService::Reply ResponsesService::retrieve(const std::string& id, const std::string& stream,
                                                   const std::string& starting_after) {
  std::shared_ptr<ResponseRecord> rec = find(id, "response_id");
  if (!stream.empty() && stream != "true" && stream != "false")
    throw ApiError::bad_request("stream: must be true or false", "stream");
  Reply reply;
  if (stream != "true") {
    reply.body = rec_response(*rec);
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
  reply.job = make_record_job(rec, true, static_cast<size_t>(after + 1));
  return reply;
}

json ResponsesService::remove(const std::string& id) {
  std::shared_ptr<ResponseRecord> rec = find(id, "response_id");
  rec->cancel = true;  // a running background response stops
  background_.wake(id);
  store_->erase(id);
  return {{"id", id}, {"object", "response"}, {"deleted", true}};
}

ResponsesService::Reply ResponsesService::cancel(const std::string& id) {
  std::shared_ptr<ResponseRecord> rec = find(id, "response_id");
  {
    // Checked and flagged under the record's lock: the run either finished before (a 400) or
    // sees the flag when it finishes (status "cancelled").
    std::lock_guard<std::mutex> l(rec->mu);
    const std::string status = rec->response.value("status", "");
    if (status != "queued" && status != "in_progress")
      throw ApiError::bad_request("Cannot cancel a synchronous response.", "response_id");
    rec->cancel = true;
  }
  background_.wake(id);  // stops at once (between two engine steps at most)
  Reply reply;
  reply.job = make_record_job(rec, false, 0);  // answers once the run has stopped, as vLLM
  return reply;
}

std::string ResponsesService::metrics_text() const {
  const ResponsesStoreStats s = store_->stats();
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
  line("fourcast:responses_background_running", "gauge",
       "Background responses running (at most 256 at once).",
       static_cast<double>(background_.running()));
  return out;
}

}  // namespace fc
