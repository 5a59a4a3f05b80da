// End-to-end tests for `fourcast bench serve` against an in-process fake OpenAI server on
// 127.0.0.1 (ephemeral port) that streams deterministic SSE chunks with controlled delays. The
// fake's behaviour per request is chosen by words in the prompt (FAIL500, MALFORMED, ERROREVENT,
// NODONE, STALL); otherwise it streams max_tokens chunks of one token each.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "benchserve/bench_serve.h"
#include "benchserve/workload.h"
#include "core/error.h"

namespace fc::benchserve {
namespace {

using nlohmann::json;

struct FakeConfig {
  int first_delay_ms = 60;    // request received -> first token chunk
  int token_delay_ms = 15;    // between token chunks
  bool send_usage = true;     // final {"choices":[],"usage":{...}} chunk
  bool spec_metrics = false;  // /metrics exposes vLLM spec_decode counters
  int prompt_overhead = 7;    // prompt_tokens = words + this (a pretend chat template)
};

class FakeServer {
 public:
  explicit FakeServer(FakeConfig cfg) : cfg_(cfg) {
    svr_.new_task_queue = [] { return new httplib::ThreadPool(64); };
    svr_.Get("/v1/models", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"object":"list","data":[{"id":"fake-model","object":"model"}]})",
                      "application/json");
    });
    svr_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      if (!cfg_.spec_metrics) {
        res.set_content("vllm:num_requests_running 0\n", "text/plain");
        return;
      }
      const long c = completed_.load();
      std::ostringstream m;
      m << "# TYPE vllm:spec_decode_num_drafts_total counter\n"
        << "vllm:spec_decode_num_drafts_total{engine=\"0\"} " << 10 * c << ".0\n"
        << "vllm:spec_decode_num_draft_tokens_total{engine=\"0\"} " << 30 * c << ".0\n"
        << "vllm:spec_decode_num_accepted_tokens_total{engine=\"0\"} " << 20 * c << ".0\n";
      const int per_pos[3] = {9, 7, 4};
      for (int k = 0; k < 3; ++k)
        m << "vllm:spec_decode_num_accepted_tokens_per_pos_total{engine=\"0\",position=\"" << k
          << "\"} " << per_pos[k] * c << ".0\n";
      res.set_content(m.str(), "text/plain");
    });
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      handle(req, res);
    };
    svr_.Post("/v1/chat/completions", handler);
    svr_.Post("/v1/completions", handler);
    port_ = svr_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    while (!svr_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeServer() {
    stopping_ = true;
    svr_.stop();
    thread_.join();
  }

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<json> bodies() {
    std::lock_guard<std::mutex> l(mu_);
    return bodies_;
  }
  std::vector<std::string> auth() {
    std::lock_guard<std::mutex> l(mu_);
    return auth_;
  }
  int max_in_flight() const { return max_in_flight_.load(); }

 private:
  void handle(const httplib::Request& req, httplib::Response& res) {
    const json body = json::parse(req.body);
    const bool chat = req.path == "/v1/chat/completions";
    const std::string prompt = chat ? body["messages"][0]["content"].get<std::string>()
                                    : body["prompt"].get<std::string>();
    const int n_tokens =
        chat ? body["max_completion_tokens"].get<int>() : body["max_tokens"].get<int>();
    {
      std::lock_guard<std::mutex> l(mu_);
      bodies_.push_back(body);
      auth_.push_back(req.get_header_value("Authorization"));
    }
    if (prompt.find("FAIL500") != std::string::npos) {
      res.status = 500;
      res.set_content(R"({"error":{"message":"fake internal error","code":500}})",
                      "application/json");
      return;
    }
    const int now = ++in_flight_;
    int prev = max_in_flight_.load();
    while (now > prev && !max_in_flight_.compare_exchange_weak(prev, now)) {
    }
    const int64_t prompt_tokens = count_words(prompt) + cfg_.prompt_overhead;
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, chat, prompt, n_tokens, prompt_tokens](size_t, httplib::DataSink& sink) {
          auto event = [&](const std::string& data) {
            const std::string e = "data: " + data + "\n\n";
            return sink.write(e.data(), e.size());
          };
          auto token = [&](int i) {
            const std::string t = "tok" + std::to_string(i) + " ";
            return event(
                chat ? json({{"choices", {{{"index", 0}, {"delta", {{"content", t}}}}}}}).dump()
                     : json({{"choices", {{{"index", 0}, {"text", t}}}}}).dump());
          };
          if (chat) event(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})");
          sleep_ms(cfg_.first_delay_ms);
          if (prompt.find("STALL") != std::string::npos) {
            token(0);
            for (int i = 0; i < 500 && !stopping_ && sink.is_writable(); ++i) sleep_ms(10);
          } else if (prompt.find("MALFORMED") != std::string::npos) {
            token(0);
            event("{\"choices\": [broken");
            --in_flight_;
            event("[DONE]");
          } else if (prompt.find("ERROREVENT") != std::string::npos) {
            token(0);
            event(R"({"error":{"message":"boom","type":"InternalServerError","code":500}})");
            --in_flight_;
            event("[DONE]");
          } else {
            for (int i = 0; i < n_tokens; ++i) {
              if (i) sleep_ms(cfg_.token_delay_ms);
              if (!token(i)) break;
            }
            event(chat ? R"({"choices":[{"index":0,"delta":{},"finish_reason":"length"}]})"
                       : R"({"choices":[{"index":0,"text":"","finish_reason":"length"}]})");
            if (cfg_.send_usage)
              event(json({{"choices", json::array()},
                          {"usage",
                           {{"prompt_tokens", prompt_tokens},
                            {"completion_tokens", n_tokens},
                            {"total_tokens", prompt_tokens + n_tokens}}}})
                        .dump());
            ++completed_;  // before [DONE], so a /metrics scrape after the run sees it
            // Likewise the in-flight count: once the client reads [DONE] it may start the next
            // request before this thread runs again.
            --in_flight_;
            if (prompt.find("NODONE") == std::string::npos) event("[DONE]");
          }
          if (prompt.find("STALL") != std::string::npos) --in_flight_;
          sink.done();
          return true;
        });
  }

  static void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

  FakeConfig cfg_;
  httplib::Server svr_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_flight_{0}, max_in_flight_{0};
  std::atomic<long> completed_{0};
  std::mutex mu_;
  std::vector<json> bodies_;
  std::vector<std::string> auth_;
};

BenchOptions base_options(const FakeServer& s) {
  BenchOptions o;
  o.base_url = s.base_url();
  o.disable_progress = true;
  o.timeout_s = 10;
  return o;
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

TEST(BenchServeE2E, ChatStreamMetricsMatchInjectedDelays) {
  FakeConfig cfg;
  FakeServer srv(cfg);
  BenchOptions o = base_options(srv);
  o.num_prompts = 8;
  o.max_concurrency = 4;
  o.random_input_len = 20;
  o.random_output_len = 6;
  o.ignore_eos = true;
  o.api_key = "secret";
  o.metric_percentiles = {50, 99};
  o.result_file = ::testing::TempDir() + "bs_result.json";
  std::ostringstream out;
  const BenchResult r = run_benchmark(o, out, nullptr);

  EXPECT_EQ(r.model, "fake-model");  // from GET /v1/models
  const BenchMetrics& m = r.metrics;
  EXPECT_EQ(m.completed, 8);
  EXPECT_EQ(m.failed, 0);
  EXPECT_EQ(m.total_output, 8 * 6);        // usage, exact
  EXPECT_EQ(m.total_input, 8 * (20 + 7));  // usage, exact
  EXPECT_EQ(m.estimated_prompt_counts, 0);
  for (const RequestRecord& rec : r.records) {
    EXPECT_TRUE(rec.success) << rec.error;
    // TTFT: at least the injected 60 ms. Upper bounds are loose (shared CI machines): they only
    // catch a client that stops measuring from the request start.
    EXPECT_GE(rec.ttft_s, 0.058);
    EXPECT_LT(rec.ttft_s, 2.0);
    EXPECT_EQ(rec.itl_s.size(), 5u);
    EXPECT_EQ(rec.generated_text, "tok0 tok1 tok2 tok3 tok4 tok5 ");
  }
  // Gaps of 15 ms on the server; a late first chunk on a busy machine can shrink them a little.
  EXPECT_GE(m.itl.mean_ms, 10.0);
  EXPECT_LT(m.itl.mean_ms, 15.0 + 500.0);
  EXPECT_GE(m.tpot.mean_ms, 10.0);  // (E2EL - TTFT) / 5 with 5 gaps of 15 ms
  EXPECT_LT(m.tpot.mean_ms, 15.0 + 500.0);
  EXPECT_GE(m.e2el.mean_ms, 60.0 + 5 * 15.0 - 2.0);
  EXPECT_EQ(m.max_concurrent_requests, 4);
  EXPECT_LE(srv.max_in_flight(), 4);
  EXPECT_GT(m.duration_s, 2 * 0.130);  // two waves of four
  EXPECT_LT(m.duration_s, 20.0);

  // What went on the wire.
  const auto bodies = srv.bodies();
  ASSERT_EQ(bodies.size(), 8u);
  for (const json& b : bodies) {
    EXPECT_EQ(b["model"], "fake-model");
    EXPECT_EQ(b["stream"], true);
    EXPECT_EQ(b["stream_options"]["include_usage"], true);
    EXPECT_EQ(b["max_completion_tokens"], 6);
    EXPECT_EQ(b["ignore_eos"], true);
    EXPECT_EQ(count_words(b["messages"][0]["content"].get<std::string>()), 20);
  }
  for (const std::string& a : srv.auth()) EXPECT_EQ(a, "Bearer secret");

  // Printed report and result file.
  const std::string text = out.str();
  EXPECT_NE(text.find("Successful requests:                     8"), std::string::npos) << text;
  EXPECT_NE(text.find("P50 TTFT (ms):"), std::string::npos);
  EXPECT_NE(text.find("P99 ITL (ms):"), std::string::npos);
  EXPECT_NE(text.find("Mean E2EL (ms):"), std::string::npos);
  EXPECT_NE(text.find("not reported"), std::string::npos);
  std::ifstream f(o.result_file);
  const json j = json::parse(f);
  EXPECT_EQ(j["completed"], 8);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["total_output_tokens"], 48);
  EXPECT_EQ(j["model_id"], "fake-model");
  EXPECT_EQ(j["request_rate"], "inf");
  EXPECT_EQ(j["max_concurrency"], 4);
  for (const char* k :
       {"duration", "request_throughput", "output_throughput", "total_token_throughput",
        "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p50_ttft_ms", "p99_ttft_ms",
        "mean_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "p99_itl_ms", "mean_e2el_ms", "p99_e2el_ms",
        "max_concurrent_requests", "max_output_tokens_per_s"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_FALSE(j.contains("spec_decode_acceptance_rate"));
  EXPECT_NEAR(j["mean_ttft_ms"].get<double>(), m.ttft.mean_ms, 1e-9);
  ASSERT_EQ(j["ttfts"].size(), 8u);
  ASSERT_EQ(j["itls"].size(), 8u);
  EXPECT_EQ(j["itls"][0].size(), 5u);
  EXPECT_EQ(j["output_lens"], json({6, 6, 6, 6, 6, 6, 6, 6}));
  ASSERT_EQ(j["requests"].size(), 8u);
  EXPECT_EQ(j["requests"][3]["output_tokens"], 6);
  EXPECT_EQ(j["requests"][3]["prompt_tokens"], 27);
  EXPECT_EQ(j["requests"][3]["success"], true);
}

TEST(BenchServeE2E, CompletionsWithoutUsageCountChunks) {
  FakeConfig cfg;
  cfg.first_delay_ms = 5;
  cfg.token_delay_ms = 2;
  cfg.send_usage = false;
  FakeServer srv(cfg);
  BenchOptions o = base_options(srv);
  o.endpoint = "/v1/completions";
  o.model = "given";
  o.num_prompts = 3;
  o.random_input_len = 9;
  o.random_output_len = 4;
  std::ostringstream out;
  const BenchResult r = run_benchmark(o, out, nullptr);
  EXPECT_EQ(r.metrics.completed, 3);
  EXPECT_EQ(r.metrics.total_output, 12);  // 4 chunks of one token each
  EXPECT_EQ(r.metrics.total_input, 27);   // word-count estimate
  EXPECT_EQ(r.metrics.estimated_output_counts, 3);
  for (const RequestRecord& rec : r.records) EXPECT_FALSE(rec.output_tokens_from_usage);
  EXPECT_EQ(srv.bodies().at(0)["model"], "given");
  EXPECT_EQ(srv.bodies().at(0)["max_tokens"], 4);
  EXPECT_NE(out.str().find("their output tokens are chunk counts"), std::string::npos);
}

TEST(BenchServeE2E, FailuresAreCountedWithTheirErrors) {
  FakeConfig cfg;
  cfg.first_delay_ms = 5;
  cfg.token_delay_ms = 2;
  FakeServer srv(cfg);
  BenchOptions o = base_options(srv);
  o.dataset_name = "file";
  o.dataset_path = write_temp("bs_fail.txt",
                              "please FAIL500\nplease MALFORMED\nplease ERROREVENT\n"
                              "please NODONE\nhello world\nanother fine prompt\n");
  o.num_prompts = 6;
  o.random_output_len = 3;
  o.model = "m";
  std::ostringstream out;
  const BenchResult r = run_benchmark(o, out, nullptr);
  EXPECT_EQ(r.metrics.completed, 2);
  EXPECT_EQ(r.metrics.failed, 4);
  EXPECT_EQ(r.metrics.total_output, 6);  // failures contribute nothing
  ASSERT_EQ(r.records.size(), 6u);
  EXPECT_NE(r.records[0].error.find("HTTP 500"), std::string::npos) << r.records[0].error;
  EXPECT_NE(r.records[0].error.find("fake internal error"), std::string::npos);
  EXPECT_NE(r.records[1].error.find("malformed"), std::string::npos) << r.records[1].error;
  EXPECT_NE(r.records[2].error.find("boom"), std::string::npos) << r.records[2].error;
  EXPECT_NE(r.records[3].error.find("[DONE]"), std::string::npos) << r.records[3].error;
  EXPECT_TRUE(r.records[4].success);
  EXPECT_TRUE(r.records[5].success);
  EXPECT_EQ(r.metrics.output_lens, (std::vector<int64_t>{0, 0, 0, 0, 3, 3}));
  EXPECT_NE(out.str().find("Failed requests:                         4"), std::string::npos);
  EXPECT_NE(out.str().find("Error 0: "), std::string::npos);
}

TEST(BenchServeE2E, TimeoutBoundsAStalledRequest) {
  FakeConfig cfg;
  cfg.first_delay_ms = 5;
  cfg.token_delay_ms = 2;
  FakeServer srv(cfg);
  BenchOptions o = base_options(srv);
  o.dataset_path = write_temp("bs_stall.txt", "STALL here\nfine prompt\nSTALL again\n");
  o.dataset_name = "file";
  o.num_prompts = 3;
  o.random_output_len = 2;
  o.model = "m";
  o.timeout_s = 0.4;
  std::ostringstream out;
  const auto t0 = std::chrono::steady_clock::now();
  const BenchResult r = run_benchmark(o, out, nullptr);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.metrics.completed, 1);
  EXPECT_EQ(r.metrics.failed, 2);
  EXPECT_NE(r.records[0].error.find("timed out"), std::string::npos) << r.records[0].error;
  EXPECT_NE(r.records[2].error.find("timed out"), std::string::npos) << r.records[2].error;
  EXPECT_LT(wall, 4.5);  // the fake would stall for 5 s
}

TEST(BenchServeE2E, SpecDecodeAcceptanceFromMetrics) {
  FakeConfig cfg;
  cfg.first_delay_ms = 5;
  cfg.token_delay_ms = 2;
  cfg.spec_metrics = true;
  FakeServer srv(cfg);
  BenchOptions o = base_options(srv);
  o.num_prompts = 5;
  o.random_input_len = 8;
  o.random_output_len = 3;
  std::ostringstream out;
  const BenchResult r = run_benchmark(o, out, nullptr);
  EXPECT_EQ(r.metrics.completed, 5);
  ASSERT_TRUE(r.info.spec.has_value());
  EXPECT_EQ(r.info.spec->drafts, 50);
  EXPECT_EQ(r.info.spec->draft_tokens, 150);
  EXPECT_EQ(r.info.spec->accepted_tokens, 100);
  EXPECT_NEAR(r.info.spec->acceptance_rate_pct, 100.0 * 2 / 3, 1e-9);
  EXPECT_NEAR(r.info.spec->acceptance_length, 3.0, 1e-12);
  ASSERT_EQ(r.info.spec->per_position.size(), 3u);
  EXPECT_NEAR(r.info.spec->per_position[2], 0.4, 1e-12);
  EXPECT_NE(out.str().find("Acceptance rate (%):                     66.67"), std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("Acceptance length:                       3.00"), std::string::npos);
  EXPECT_NEAR(r.result["spec_decode_acceptance_length"].get<double>(), 3.0, 1e-12);
}

TEST(BenchServeE2E, RequestRateSpreadsArrivals) {
  FakeConfig cfg;
  cfg.first_delay_ms = 2;
  cfg.token_delay_ms = 1;
  FakeServer srv(cfg);
  BenchOptions o = base_options(srv);
  o.num_prompts = 6;
  o.request_rate = 20;
  o.seed = 3;
  o.random_input_len = 4;
  o.random_output_len = 2;
  std::ostringstream out;
  const BenchResult r = run_benchmark(o, out, nullptr);
  EXPECT_EQ(r.metrics.completed, 6);
  std::vector<double> arrivals;
  for (const RequestRecord& rec : r.records) arrivals.push_back(rec.arrival_s);
  EXPECT_TRUE(std::is_sorted(arrivals.begin(), arrivals.end()));
  EXPECT_NEAR(arrivals.back(), 6 / 20.0, 0.05);  // the schedule ends at n / rate
  EXPECT_GE(r.metrics.duration_s, 0.3);
  EXPECT_NE(out.str().find("Request rate configured (RPS):           20.00"), std::string::npos);
}

TEST(BenchServeE2E, UnreachableServer) {
  // A port that was free a moment ago and has no listener: connections are refused.
  int port = 0;
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    port = ntohs(a.sin_port);
    ::close(fd);
  }
  BenchOptions o;
  o.base_url = "http://127.0.0.1:" + std::to_string(port);
  o.disable_progress = true;
  o.num_prompts = 2;
  o.random_input_len = 3;
  o.random_output_len = 2;
  o.timeout_s = 2;
  std::ostringstream out;
  try {
    run_benchmark(o, out, nullptr);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/v1/models"), std::string::npos) << e.what();
  }
  o.model = "m";  // no lookup: every request fails fast instead
  const BenchResult r = run_benchmark(o, out, nullptr);
  EXPECT_EQ(r.metrics.failed, 2);
  EXPECT_NE(r.records[0].error.find("request failed"), std::string::npos) << r.records[0].error;
}

TEST(BenchServeE2E, CliEntryPoint) {
  FakeConfig cfg;
  cfg.first_delay_ms = 1;
  cfg.token_delay_ms = 1;
  FakeServer srv(cfg);
  auto run = [](std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return ::run_bench_serve(static_cast<int>(argv.size()), argv.data(), 2);
  };
  EXPECT_EQ(run({"fourcast", "bench", "--help"}), 0);
  EXPECT_EQ(run({"fourcast", "bench", "--no-such-flag"}), 1);
  EXPECT_EQ(run({"fourcast", "bench", "--base-url", srv.base_url(), "--num-prompts", "2",
                 "--random-input-len", "3", "--random-output-len", "2"}),
            0);  // with the progress bar (stderr)
  const std::string bad = write_temp("bs_allbad.txt", "FAIL500\n");
  EXPECT_EQ(run({"fourcast", "bench", "--base-url", srv.base_url(), "--num-prompts", "2",
                 "--dataset-path", bad, "--disable-tqdm"}),
            1);
}

}  // namespace
}  // namespace fc::benchserve
