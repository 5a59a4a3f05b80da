#include "server/responses_jobs.h"

#include <vector>

#include "core/log.h"
#include "server/api_error.h"

namespace fc {

using nlohmann::json;

namespace {

constexpr const char* kAborted =
    "the response was aborted before it finished: the server is shutting down";

// The chat stream job's payloads (chat.completion.chunk JSON) into the builder.
SseSink into(ResponseBuilder& b) {
  return [&b](const std::string& data) {
    if (!data.empty()) b.chunk(json::parse(data));
    return true;
  };
}

class ForegroundJob final : public ResponseJob {
 public:
  ForegroundJob(ResponseRun run, bool stream, StoreResponse store)
      : run_(std::move(run)),
        stream_(stream),
        store_(std::move(store)),
        b_(run_.skeleton, run_.bopt, [this](const json& ev) {
          if (sink_) (*sink_)(responses_frame(ev));
        }) {}

  bool streaming() const override { return stream_; }
  bool writes_frames() const override { return true; }
  void on_output(std::function<void()> wake) override { run_.chat->on_output(std::move(wake)); }

  bool pump(const SseSink& sink) override {
    if (done_) return true;
    sink_ = stream_ ? &sink : nullptr;  // the builder's events go to this pump's sink
    struct Clear {
      const SseSink*& s;
      ~Clear() { s = nullptr; }
    } clear{sink_};
    if (!started_) {
      started_ = true;
      b_.start();
    }
    bool finished = false;
    try {
      finished = run_.chat->pump(into(b_));
    } catch (const std::exception& e) {
      if (!stream_) throw;  // the HTTP layer answers the ApiError (an engine error: 500)
      const auto* api = dynamic_cast<const ApiError*>(&e);
      if (!api) log_line(LogLevel::kError, std::string("response failed: ") + e.what());
      b_.fail(api ? api->status() : 500, e.what());
      done_ = true;
      return true;
    }
    if (!finished) return false;
    done_ = true;
    if (aborted_ || b_.finish_reason() == "abort") {
      // Cut short (client gone: nothing more is sent; server stopping: the stream says so).
      aborted_ = true;
      if (stream_) b_.fail(503, kAborted);
      return true;
    }
    b_.finish();
    if (store_) store_(b_.response());
    return true;
  }

  json result() override {
    if (aborted_) throw ApiError(503, kAborted);  // never a 200 with truncated output
    return b_.response();
  }

  void abort() override {
    aborted_ = true;
    run_.chat->abort();  // the engine ends the request; its last event wakes the pump
  }

 private:
  ResponseRun run_;
  bool stream_;
  StoreResponse store_;
  const SseSink* sink_ = nullptr;
  ResponseBuilder b_;
  bool started_ = false, done_ = false;
  std::atomic<bool> aborted_{false};
};

class RecordJob final : public ResponseJob {
 public:
  RecordJob(std::shared_ptr<ResponseRecord> rec, bool stream, size_t next)
      : rec_(std::move(rec)), stream_(stream), next_(next) {}

  bool streaming() const override { return stream_; }
  bool writes_frames() const override { return true; }

  void on_output(std::function<void()> wake) override {
    std::lock_guard<std::mutex> l(mu_);
    wake_ = std::make_shared<const std::function<void()>>(std::move(wake));
    rec_->watch(wake_);  // dropped with this job
  }

  bool pump(const SseSink& sink) override {
    if (finished_) return true;
    std::vector<std::string> batch;
    bool done = false;
    {
      std::lock_guard<std::mutex> l(rec_->mu);
      if (stream_)
        for (; next_ < rec_->events.size(); ++next_) batch.push_back(rec_->events[next_]);
      done = rec_->done;
      if (done && !stream_) response_ = rec_->response;
    }
    for (const std::string& f : batch) sink(f);
    if (!done && aborted_ && stream_)  // the server stops (or the client left: dropped)
      sink(responses_frame({{"type", "error"},
                            {"code", "server_error"},
                            {"message", "the server is shutting down"},
                            {"param", nullptr},
                            {"sequence_number", next_}}));
    finished_ = done || aborted_;
    return finished_;
  }

  json result() override {
    if (response_.is_null()) throw ApiError(503, "the server is shutting down");
    return response_;
  }

  void abort() override {
    aborted_ = true;
    std::shared_ptr<const std::function<void()>> w;
    {
      std::lock_guard<std::mutex> l(mu_);
      w = wake_;
    }
    if (w) (*w)();  // one more pump, which ends the job
  }

 private:
  std::shared_ptr<ResponseRecord> rec_;
  bool stream_;
  size_t next_;
  std::mutex mu_;  // wake_
  std::shared_ptr<const std::function<void()>> wake_;
  std::atomic<bool> aborted_{false};
  bool finished_ = false;
  json response_;
};

}  // namespace

std::string responses_frame(const json& ev) {
  return "event: " + ev.value("type", std::string("message")) +
         "\ndata: " + ev.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

std::unique_ptr<ResponseJob> make_foreground_job(ResponseRun run, bool stream,
                                                 StoreResponse store) {
  return std::make_unique<ForegroundJob>(std::move(run), stream, std::move(store));
}

std::unique_ptr<ResponseJob> make_record_job(std::shared_ptr<ResponseRecord> rec, bool stream,
                                             size_t next) {
  return std::make_unique<RecordJob>(std::move(rec), stream, next);
}

// ------------------------------------------------------------------ BackgroundRunner

struct BackgroundRunner::Run {
  ResponseRun r;
  std::shared_ptr<ResponseRecord> rec;
  std::unique_ptr<ResponseBuilder> b;
  std::atomic<bool> queued{false};  // in ready_ (or about to be)
  bool started = false, finished = false;
  bool changed = false;  // events added since the record was last re-accounted
  size_t base_bytes = 0, event_bytes = 0;
};

BackgroundRunner::BackgroundRunner(std::shared_ptr<ResponsesStore> store, size_t max_running)
    : store_(std::move(store)), max_running_(max_running), thread_([this] { loop(); }) {}

BackgroundRunner::~BackgroundRunner() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  std::unordered_map<std::string, std::shared_ptr<Run>> runs;
  {
    std::lock_guard<std::mutex> l(mu_);
    runs.swap(runs_);
    ready_.clear();
  }
  for (auto& [id, run] : runs) {
    if (run->finished) continue;
    log_line(LogLevel::kWarn, "background response " + id + " cancelled: the server stopped");
    run->rec->cancel = true;
    run->b->cancelled();
    finish(*run);
  }
}

void BackgroundRunner::check_capacity() const {
  std::lock_guard<std::mutex> l(mu_);
  check_capacity_locked();
}

void BackgroundRunner::check_capacity_locked() const {
  if (stop_) throw ApiError(503, "the server is stopping");
  if (runs_.size() >= max_running_)
    throw ApiError(429, "too many background responses in progress (" +
                            std::to_string(max_running_) + "); retry later");
}

void BackgroundRunner::add(ResponseRun r, std::shared_ptr<ResponseRecord> rec) {
  auto run = std::make_shared<Run>();
  run->r = std::move(r);
  run->rec = std::move(rec);
  {
    std::lock_guard<std::mutex> l(run->rec->mu);
    run->base_bytes = record_bytes(*run->rec);
  }
  Run* raw = run.get();  // the builder lives in the run
  run->b = std::make_unique<ResponseBuilder>(run->r.skeleton, run->r.bopt, [raw](const json& ev) {
    if (!raw->rec->keep_events) return;  // fixed before the run starts
    std::string f = responses_frame(ev);
    raw->event_bytes += f.size();
    std::lock_guard<std::mutex> l(raw->rec->mu);
    raw->rec->events.push_back(std::move(f));
    raw->changed = true;
  });
  {
    std::lock_guard<std::mutex> l(mu_);
    check_capacity_locked();
    runs_[run->r.id] = run;
  }
  // From the engine thread: quick, and never the last owner of the run (runs_ or ready_ keep it
  // until finish() destroyed the chat job, after which this is never called again).
  std::weak_ptr<Run> weak = run;
  run->r.chat->on_output([this, weak] {
    if (std::shared_ptr<Run> r = weak.lock()) enqueue(r);
  });
  enqueue(run);
}

bool BackgroundRunner::wake(const std::string& id) {
  std::shared_ptr<Run> run;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = runs_.find(id);
    if (it == runs_.end()) return false;
    run = it->second;
  }
  enqueue(run);
  return true;
}

size_t BackgroundRunner::running() const {
  std::lock_guard<std::mutex> l(mu_);
  return runs_.size();
}

void BackgroundRunner::enqueue(const std::shared_ptr<Run>& run) {
  if (run->queued.exchange(true)) return;  // already waiting for its turn
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return;
    ready_.push_back(run);
  }
  cv_.notify_one();
}

void BackgroundRunner::loop() {
  for (;;) {
    std::shared_ptr<Run> run;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !ready_.empty(); });
      if (stop_) return;
      run = std::move(ready_.front());
      ready_.pop_front();
    }
    run->queued = false;  // a wake from now on queues it again
    bool done = true;
    try {
      done = step(*run);
    } catch (const std::exception& e) {  // a bug: end the run rather than the thread
      log_line(LogLevel::kError, std::string("background response failed: ") + e.what());
      if (!run->finished) {
        run->b->fail(500, std::string("internal error: ") + e.what());
        finish(*run);
      }
    }
    if (done) {
      std::lock_guard<std::mutex> l(mu_);
      runs_.erase(run->r.id);
    }
  }
}

bool BackgroundRunner::step(Run& run) {
  if (run.finished) return true;
  ResponseRecord& rec = *run.rec;
  if (!run.started) {
    run.started = true;
    {
      std::lock_guard<std::mutex> l(rec.mu);
      rec.response["status"] = "in_progress";
    }
    run.b->start();
  }
  if (rec.cancel) {  // POST .../cancel or DELETE: stop now, keep the output so far
    run.b->cancelled();
    finish(run);
    return true;
  }
  bool done = false;
  try {
    done = run.r.chat->pump(into(*run.b));
  } catch (const std::exception& e) {
    const auto* api = dynamic_cast<const ApiError*>(&e);
    if (!api) log_line(LogLevel::kError, std::string("background response failed: ") + e.what());
    run.b->fail(api ? api->status() : 500, e.what());
    finish(run);
    return true;
  }
  if (done) {
    if (run.b->finish_reason() != "abort")
      run.b->finish();
    else if (rec.cancel)
      run.b->cancelled();
    else {  // the engine dropped it (stopping)
      log_line(LogLevel::kWarn, "background response " + run.r.id + " failed: " + kAborted);
      run.b->fail(503, kAborted);
    }
    finish(run);
    return true;
  }
  if (run.changed) {
    run.changed = false;
    store_->resize(run.r.id, run.base_bytes + run.event_bytes);
    rec.wake_watchers();
  }
  return false;
}

void BackgroundRunner::finish(Run& run) {
  run.r.chat.reset();  // aborts the engine request if it still runs; no more wakes after this
  ResponseRecord& rec = *run.rec;
  size_t bytes = 0;
  {
    std::lock_guard<std::mutex> l(rec.mu);
    rec.response = run.b->response();
    if (rec.cancel) rec.response["status"] = "cancelled";
    rec.done = true;
    bytes = record_bytes(rec);
  }
  store_->resize(run.r.id, bytes);
  run.finished = true;
  rec.wake_watchers();
}

}  // namespace fc
