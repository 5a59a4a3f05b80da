// The Responses jobs over a scripted chat stream job (no engine): foreground frames and bodies,
// aborts that never look like a success, record followers, and the background runner (one
// thread, woken like the engine wakes it; cancel, capacity, the store re-accounted as it grows).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "server/api_error.h"
#include "server/responses_jobs.h"

namespace fc {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string chunk(const std::string& content, json finish = nullptr) {
  json ch = {{"index", 0},
             {"delta", {{"content", content}}},
             {"logprobs", nullptr},
             {"finish_reason", finish}};
  return json{{"object", "chat.completion.chunk"}, {"choices", json::array({ch})}}.dump();
}

// A chat stream job whose chunks the test releases; wake() plays the engine's notify.
struct Script {
  std::mutex mu;
  std::vector<std::string> pending;
  bool ended = false, aborted = false, destroyed = false;
  std::function<void()> wake;
  void push(std::string c, bool end = false) {
    std::function<void()> w;
    {
      std::lock_guard<std::mutex> l(mu);
      pending.push_back(std::move(c));
      ended |= end;
      w = wake;
    }
    if (w) w();
  }
};

class FakeChat final : public ResponseJob {
 public:
  explicit FakeChat(std::shared_ptr<Script> s) : s_(std::move(s)) {}
  ~FakeChat() override {
    std::lock_guard<std::mutex> l(s_->mu);
    s_->destroyed = true;
    s_->wake = nullptr;
  }
  bool streaming() const override { return true; }
  void on_output(std::function<void()> wake) override {
    std::lock_guard<std::mutex> l(s_->mu);
    s_->wake = std::move(wake);
  }
  bool pump(const SseSink& sink) override {
    std::vector<std::string> out;
    bool done = false;
    {
      std::lock_guard<std::mutex> l(s_->mu);
      out.swap(s_->pending);
      if (s_->aborted && !s_->ended) {  // the engine's last event for an aborted request
        out.push_back(chunk("", "abort"));
        s_->ended = true;
      }
      done = s_->ended;
    }
    for (const std::string& c : out) sink(c);
    return done;
  }
  json result() override { return nullptr; }
  void abort() override {
    std::function<void()> w;
    {
      std::lock_guard<std::mutex> l(s_->mu);
      s_->aborted = true;
      w = s_->wake;
    }
    if (w) w();
  }

 private:
  std::shared_ptr<Script> s_;
};

ResponseRun make_run(const std::string& id, std::shared_ptr<Script> s) {
  ResponseRun r;
  r.id = id;
  r.chat = std::make_unique<FakeChat>(std::move(s));
  r.skeleton = {{"id", id}, {"object", "response"}, {"status", "queued"}};
  return r;
}

// Frames "event: T\ndata: J\n\n" -> the events' JSON, checking the framing.
std::vector<json> parse_frames(const std::string& text) {
  std::vector<json> out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t end = text.find("\n\n", i);
    EXPECT_NE(end, std::string::npos);
    const std::string block = text.substr(i, end - i);
    const size_t nl = block.find('\n');
    json ev = json::parse(block.substr(nl + 7));
    EXPECT_EQ(block.substr(0, nl), "event: " + ev["type"].get<std::string>());
    out.push_back(ev);
    i = end + 2;
  }
  return out;
}

std::string drain(ResponseJob& job, bool* done = nullptr) {
  std::string bytes;
  const bool d = job.pump([&](const std::string& f) {
    bytes += f;
    return true;
  });
  if (done) *done = d;
  return bytes;
}

TEST(ResponsesJobs, ForegroundStreamWritesFramesAndStoresTheResult) {
  auto s = std::make_shared<Script>();
  int stored = 0;
  json kept;
  auto job = make_foreground_job(make_run("resp_1", s), true, [&](const json& r) {
    ++stored;
    kept = r;
  });
  ASSERT_TRUE(job->streaming() && job->writes_frames());
  job->on_output([] {});
  bool done = true;
  std::string text = drain(*job, &done);
  EXPECT_FALSE(done);
  s->push(chunk("Hel"));
  s->push(chunk("lo"));
  text += drain(*job, &done);
  EXPECT_FALSE(done);
  s->push(chunk("", "stop"), true);
  text += drain(*job, &done);
  EXPECT_TRUE(done);
  const std::vector<json> ev = parse_frames(text);
  std::vector<std::string> types;
  for (const json& e : ev) types.push_back(e["type"]);
  const std::vector<std::string> want = {
      "response.created",           "response.in_progress",
      "response.output_item.added", "response.content_part.added",
      "response.output_text.delta", "response.output_text.delta",
      "response.output_text.done",  "response.content_part.done",
      "response.output_item.done",  "response.completed"};
  EXPECT_EQ(types, want);
  for (size_t i = 0; i < ev.size(); ++i) EXPECT_EQ(ev[i]["sequence_number"], i);
  EXPECT_EQ(stored, 1);
  EXPECT_EQ(kept["status"], "completed");
  EXPECT_EQ(kept["output"][0]["content"][0]["text"], "Hello");
}

TEST(ResponsesJobs, AbortedForegroundNeverLooksLikeASuccess) {
  {  // non-streaming: 503 from result(), nothing stored
    auto s = std::make_shared<Script>();
    int stored = 0;
    auto job = make_foreground_job(make_run("resp_2", s), false, [&](const json&) { ++stored; });
    EXPECT_FALSE(job->streaming());
    job->on_output([] {});
    s->push(chunk("partial"));
    bool done = true;
    EXPECT_EQ(drain(*job, &done), "");
    EXPECT_FALSE(done);
    job->abort();
    drain(*job, &done);
    EXPECT_TRUE(done);
    try {
      job->result();
      ADD_FAILURE() << "no error";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 503);
      EXPECT_NE(std::string(e.what()).find("shutting down"), std::string::npos);
    }
    EXPECT_EQ(stored, 0);
  }
  {  // streaming: ends with an error event
    auto s = std::make_shared<Script>();
    auto job = make_foreground_job(make_run("resp_3", s), true, nullptr);
    job->on_output([] {});
    s->push(chunk("partial"));
    std::string text = drain(*job);
    job->abort();
    bool done = false;
    text += drain(*job, &done);
    EXPECT_TRUE(done);
    const std::vector<json> ev = parse_frames(text);
    ASSERT_FALSE(ev.empty());
    EXPECT_EQ(ev.back()["type"], "error");
    EXPECT_EQ(ev.back()["sequence_number"], ev.size() - 1);
  }
}

TEST(ResponsesJobs, RecordFollowersReplayFollowAndStopOnAbort) {
  auto rec = std::make_shared<ResponseRecord>();
  rec->done = false;
  rec->keep_events = true;
  rec->events = {"event: a\ndata: {\"type\":\"a\"}\n\n", "event: b\ndata: {\"type\":\"b\"}\n\n"};
  auto reader = make_record_job(rec, true, 1);  // starting after event 0
  int wakes = 0;
  reader->on_output([&] { ++wakes; });
  bool done = true;
  EXPECT_EQ(drain(*reader, &done), rec->events[1]);
  EXPECT_FALSE(done);
  {
    std::lock_guard<std::mutex> l(rec->mu);
    rec->events.push_back("event: c\ndata: {\"type\":\"c\"}\n\n");
  }
  rec->wake_watchers();
  EXPECT_EQ(wakes, 1);
  EXPECT_EQ(drain(*reader, &done), rec->events[2]);
  EXPECT_FALSE(done);
  rec->wake_watchers();  // every change wakes the follower again
  EXPECT_EQ(wakes, 2);
  // A cancel waiter answers once the record is done.
  auto waiter = make_record_job(rec, false, 0);
  waiter->on_output([] {});
  EXPECT_FALSE(waiter->pump({}));
  {
    std::lock_guard<std::mutex> l(rec->mu);
    rec->response = {{"id", "resp_x"}, {"status", "cancelled"}};
    rec->done = true;
  }
  rec->wake_watchers();
  EXPECT_EQ(wakes, 3);
  EXPECT_TRUE(waiter->pump({}));
  EXPECT_EQ(waiter->result()["status"], "cancelled");
  waiter.reset();  // a follower that went away is not called again
  rec->wake_watchers();
  EXPECT_EQ(wakes, 4);
  EXPECT_EQ(drain(*reader, &done), "");
  EXPECT_TRUE(done);
  // Aborting a follower of a running record ends it with an error event (numbered after what it
  // sent), and wakes it for that last pump; the record is untouched.
  auto rec2 = std::make_shared<ResponseRecord>();
  rec2->done = false;
  rec2->keep_events = true;
  auto r2 = make_record_job(rec2, true, 0);
  int woken = 0;
  r2->on_output([&] { ++woken; });
  r2->abort();
  EXPECT_EQ(woken, 1);
  const std::vector<json> ev = parse_frames(drain(*r2, &done));
  EXPECT_TRUE(done);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["type"], "error");
  EXPECT_EQ(ev[0]["sequence_number"], 0);
  EXPECT_FALSE(rec2->done);
  auto w2 = make_record_job(rec2, false, 0);
  w2->on_output([] {});
  w2->abort();
  EXPECT_TRUE(w2->pump({}));
  EXPECT_THROW(w2->result(), ApiError);
}

bool wait_for(const std::function<bool()>& cond) {
  for (int i = 0; i < 1000; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(2ms);
  }
  return false;
}

bool record_done(ResponseRecord& rec) {
  std::lock_guard<std::mutex> l(rec.mu);
  return rec.done;
}

std::shared_ptr<ResponseRecord> stored_record(ResponsesStore& store, const std::string& id,
                                              bool keep_events) {
  auto rec = std::make_shared<ResponseRecord>();
  rec->response = {{"id", id}, {"status", "queued"}};
  rec->keep_events = keep_events;
  rec->done = false;
  EXPECT_TRUE(store.put(id, rec, record_bytes(*rec)));
  return rec;
}

TEST(ResponsesJobs, BackgroundRunsDetachedAndReaccountsTheStore) {
  auto store = std::make_shared<ResponsesStore>(ResponsesStoreLimits{});
  BackgroundRunner runner(store, 4);
  auto s = std::make_shared<Script>();
  auto rec = stored_record(*store, "resp_bg", true);
  const size_t bytes0 = store->stats().bytes;
  runner.add(make_run("resp_bg", s), rec);
  EXPECT_EQ(runner.running(), 1u);
  auto reader = make_record_job(rec, true, 0);
  std::atomic<int> wakes{0};
  reader->on_output([&] { ++wakes; });
  // The runner starts the run by itself: created + in_progress.
  ASSERT_TRUE(wait_for([&] {
    std::lock_guard<std::mutex> l(rec->mu);
    return rec->events.size() == 2 && rec->response["status"] == "in_progress";
  }));
  for (int i = 0; i < 20; ++i) s->push(chunk("x"));
  ASSERT_TRUE(wait_for([&] { return store->stats().bytes > bytes0 + 2000; }));
  EXPECT_GT(wakes, 0);
  s->push(chunk("", "length"), true);
  ASSERT_TRUE(wait_for([&] { return record_done(*rec); }));
  EXPECT_TRUE(wait_for([&] { return runner.running() == 0; }));
  {
    std::lock_guard<std::mutex> l(rec->mu);
    EXPECT_EQ(rec->response["status"], "incomplete");
    EXPECT_EQ(rec->response["output"][0]["content"][0]["text"], std::string(20, 'x'));
    EXPECT_EQ(store->stats().bytes, record_bytes(*rec));
  }
  EXPECT_TRUE(s->destroyed);  // the chat job went with the run
  const std::vector<json> ev = parse_frames(drain(*reader));
  EXPECT_EQ(ev.back()["type"], "response.completed");
  EXPECT_EQ(ev.size(), rec->events.size());
}

TEST(ResponsesJobs, BackgroundCancelCapacityAndShutdown) {
  auto store = std::make_shared<ResponsesStore>(ResponsesStoreLimits{});
  auto runner = std::make_unique<BackgroundRunner>(store, 2);
  auto s1 = std::make_shared<Script>(), s2 = std::make_shared<Script>();
  auto r1 = stored_record(*store, "resp_a", false), r2 = stored_record(*store, "resp_b", false);
  runner->add(make_run("resp_a", s1), r1);
  runner->add(make_run("resp_b", s2), r2);
  try {
    runner->check_capacity();
    ADD_FAILURE() << "no 429";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 429);
  }
  EXPECT_THROW(runner->add(make_run("resp_c", std::make_shared<Script>()),
                           stored_record(*store, "resp_c", false)),
               ApiError);
  s1->push(chunk("partial"));
  r1->cancel = true;
  EXPECT_TRUE(runner->wake("resp_a"));
  ASSERT_TRUE(wait_for([&] { return record_done(*r1); }));
  {
    std::lock_guard<std::mutex> l(r1->mu);
    EXPECT_EQ(r1->response["status"], "cancelled");
  }
  EXPECT_TRUE(wait_for([&] { return s1->destroyed; }));
  EXPECT_FALSE(runner->wake("resp_nope"));
  // At exit, runs still going end cancelled and release their chat jobs.
  runner.reset();
  EXPECT_TRUE(record_done(*r2));
  EXPECT_TRUE(s2->destroyed);
  std::lock_guard<std::mutex> l(r2->mu);
  EXPECT_EQ(r2->response["status"], "cancelled");
}

}  // namespace
}  // namespace fc
