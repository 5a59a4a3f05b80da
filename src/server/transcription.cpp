#include "server/transcription.h"

#include <chrono>
#include <mutex>

#include "core/log.h"
#include "server/api_error.h"

namespace fc {

using nlohmann::json;

namespace {

constexpr size_t kWindow = 4;  // clips running at once

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The clips of one request as chat jobs; an http::Deferred (deferred body or SSE stream).
class SpeechJob final : public http::Deferred {
 public:
  SpeechJob(ServingContext& ctx, SpeechRequest r)
      : ctx_(ctx),
        req_(std::move(r)),
        object_(req_.task == SpeechTask::kTranscribe ? "transcription.chunk" : "translation.chunk"),
        id_((req_.task == SpeechTask::kTranscribe ? "trsc-" : "trsl-") +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())),
        model_(req_.model.empty() ? ctx.model_name : req_.model),
        created_(unix_now()) {
    for (const AudioClip& c : split_audio(req_.samples)) {
      clips_.emplace_back();
      clips_.back().clip = c;
    }
    start_more();  // the first clip: its client errors are thrown from here
  }

  void start(std::function<void()> wake) override {
    std::lock_guard<std::mutex> lk(mu_);
    wake_ = std::move(wake);
    for (Clip& c : clips_)
      if (c.job) c.job->on_output(wake_);
  }

  bool pump(std::string& bytes, http::Response& final) override {
    try {
      return step(bytes, final);
    } catch (const ApiError& e) {
      fail(bytes, final, e.status(), e.what(), e.param());
    } catch (const std::exception& e) {
      log_line(LogLevel::kError, std::string("speech request failed: ") + e.what());
      fail(bytes, final, 500, std::string("internal error: ") + e.what(), "");
    }
    return true;
  }

  void cancel(http::CancelReason) override {
    std::lock_guard<std::mutex> lk(mu_);
    cancelled_ = true;
    for (Clip& c : clips_)
      if (c.job) c.job->abort();
  }

 private:
  struct Clip {
    AudioClip clip;
    std::unique_ptr<ResponseJob> job;
    bool started = false, done = false;
    std::vector<std::string> events;  // streaming: chat payloads not yet forwarded
    std::string content;              // the chat content so far (translations stream it whole)
    int prompt_tokens = 0, completion_tokens = 0;
    ClipResult result;
  };

  // Starts clips in order while fewer than kWindow run.
  void start_more() {
    size_t running = 0;
    for (const Clip& c : clips_) running += c.started && !c.done;
    for (size_t i = next_; i < clips_.size() && running < kWindow; ++i, ++next_, ++running) {
      ChatRequest cr = parse_chat_request(
          clip_chat_body(req_, clips_[i].clip, req_.response_format == "verbose_json"));
      std::unique_ptr<ResponseJob> job = start_chat(ctx_, cr);
      std::lock_guard<std::mutex> lk(mu_);
      if (cancelled_) job->abort();
      if (wake_) {
        job->on_output(wake_);
        started_late_ = true;  // pumped on the next step
      }
      clips_[i].job = std::move(job);
      clips_[i].started = true;
    }
  }

  // One chat payload of clip `c` → the SSE object(s) to forward (content deltas only).
  void forward(Clip& c, const std::string& payload, std::string& bytes) {
    const json ch = json::parse(payload);
    if (ch.contains("usage") && ch["usage"].is_object()) {
      c.prompt_tokens = ch["usage"].value("prompt_tokens", c.prompt_tokens);
      c.completion_tokens = ch["usage"].value("completion_tokens", c.completion_tokens);
    }
    if (!ch.contains("choices") || !ch["choices"].is_array() || ch["choices"].empty()) return;
    const json& choice = ch["choices"][0];
    std::string delta;
    if (choice.contains("delta") && choice["delta"].contains("content") &&
        choice["delta"]["content"].is_string())
      delta = choice["delta"]["content"].get<std::string>();
    const json finish = choice.value("finish_reason", json());
    c.content += delta;
    if (req_.task == SpeechTask::kTranslate) {  // the translation only once the clip ended
      delta = finish.is_null() ? "" : speech_output_text(req_, c.content);
    }
    if (delta.empty() && finish.is_null()) return;
    if (!delta.empty() && !clip_has_text_) {
      if (any_text_) delta = " " + delta;  // join_clip_texts' separator
      clip_has_text_ = any_text_ = true;
    }
    json out_choice = {{"delta", {{"content", delta}}}};
    if (!finish.is_null()) {
      out_choice["finish_reason"] = finish;
      out_choice["stop_reason"] = choice.value("stop_reason", json());
    }
    json o = {{"id", id_},
              {"object", object_},
              {"created", created_},
              {"model", model_},
              {"choices", json::array({out_choice})}};
    if (req_.continuous_usage_stats) o["usage"] = usage();
    bytes += "data: " + dump(o) + "\n\n";
  }

  json usage() const {
    int p = 0, n = 0;
    for (const Clip& c : clips_) p += c.prompt_tokens, n += c.completion_tokens;
    return {{"prompt_tokens", p}, {"completion_tokens", n}, {"total_tokens", p + n}};
  }

  // A finished non-streaming clip's chat result → its text, tokens and mean logprob.
  void take_result(Clip& c) {
    const json res = c.job->result();
    const json& choice = res.at("choices").at(0);
    const json& content = choice.at("message").value("content", json());
    c.result.clip = c.clip;
    c.result.text = speech_output_text(req_, content.is_string() ? content.get<std::string>() : "");
    if (choice.contains("token_ids"))
      c.result.tokens = choice["token_ids"].get<std::vector<int32_t>>();
    if (choice.contains("logprobs") && choice["logprobs"].is_object()) {
      double sum = 0;
      size_t n = 0;
      for (const json& t : choice["logprobs"].value("content", json::array()))
        if (t.contains("logprob") && t["logprob"].is_number())
          sum += t["logprob"].get<double>(), ++n;
      c.result.avg_logprob = n ? sum / static_cast<double>(n) : 0.0;
    }
  }

  bool step(std::string& bytes, http::Response& final) {
    start_more();
    started_late_ = false;
    for (Clip& c : clips_) {
      if (!c.started || c.done) continue;
      if (req_.stream)
        c.done = c.job->pump([&c](const std::string& data) {
          c.events.push_back(data);
          return true;
        });
      else
        c.done = c.job->pump({});
    }
    // Forward in clip order.
    while (cur_ < clips_.size() && clips_[cur_].started) {
      Clip& c = clips_[cur_];
      for (const std::string& e : c.events) forward(c, e, bytes);
      c.events.clear();
      if (!c.done) break;
      if (!req_.stream) take_result(c);
      ++cur_;
      clip_has_text_ = false;
      start_more();
    }
    if (cur_ < clips_.size()) {
      if (started_late_ && wake_) wake_();  // clips started after this step's pumps
      return false;
    }
    if (req_.stream) {
      if (req_.include_usage) {
        const json o = {{"id", id_},       {"object", object_},        {"created", created_},
                        {"model", model_}, {"choices", json::array()}, {"usage", usage()}};
        bytes += "data: " + dump(o) + "\n\n";
      }
      bytes += "data: [DONE]\n\n";
      return true;
    }
    std::vector<ClipResult> results;
    for (const Clip& c : clips_) results.push_back(c.result);
    SpeechBody b = speech_response(req_, results);
    final.set_content(std::move(b.body), std::move(b.content_type));
    return true;
  }

  void fail(std::string& bytes, http::Response& final, int status, const std::string& message,
            const std::string& param) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      cancelled_ = true;
      for (Clip& c : clips_)
        if (c.job) c.job->abort();
    }
    next_ = clips_.size();
    if (req_.stream) {
      bytes += "data: " + dump(error_json(status, message, param)) + "\n\n";
      bytes += "data: [DONE]\n\n";
    } else {
      final.status = status;
      final.set_content(dump(error_json(status, message, param)), "application/json");
    }
  }

  ServingContext& ctx_;
  SpeechRequest req_;
  std::string object_, id_, model_;
  int64_t created_;
  std::vector<Clip> clips_;
  size_t next_ = 0;  // the next clip to start
  size_t cur_ = 0;   // the clip being forwarded
  bool any_text_ = false, clip_has_text_ = false, started_late_ = false;
  std::mutex mu_;  // wake_, cancelled_ and the jobs against cancel()
  std::function<void()> wake_;
  bool cancelled_ = false;
};

}  // namespace

void respond_speech(ServingContext& ctx, SpeechRequest r, http::Response& res) {
  const bool stream = r.stream;
  auto job = std::make_shared<SpeechJob>(ctx, std::move(r));
  if (stream) {
    res.set_header("Cache-Control", "no-cache");
    res.stream(std::move(job), "text/event-stream");
  } else {
    res.defer(std::move(job));
  }
}

}  // namespace fc
