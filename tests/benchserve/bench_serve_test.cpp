// Unit tests for `fourcast bench serve`: statistics against hand-computed values, the SSE parser
// and stream accumulator, Prometheus spec-decode scraping, workloads, arrivals and flags.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "benchserve/bench_serve.h"
#include "benchserve/client.h"
#include "benchserve/metrics.h"
#include "benchserve/sse.h"
#include "benchserve/workload.h"
#include "core/error.h"

namespace fc::benchserve {
namespace {

TEST(Stats, PercentileMatchesNumpyLinear) {
  // np.percentile([1..10], p): rank = p/100 * 9, interpolated.
  const std::vector<double> v = {7, 3, 10, 1, 5, 2, 9, 4, 8, 6};  // unsorted on purpose
  EXPECT_DOUBLE_EQ(percentile(v, 50), 5.5);
  EXPECT_DOUBLE_EQ(percentile(v, 99), 9.91);
  EXPECT_DOUBLE_EQ(percentile(v, 90), 9.1);
  EXPECT_DOUBLE_EQ(percentile(v, 25), 3.25);
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 10);
  EXPECT_DOUBLE_EQ(percentile({4.0}, 99), 4.0);
  EXPECT_DOUBLE_EQ(percentile({}, 50), 0.0);  // vLLM: np.percentile(values or 0, p)
  // Four values: p99 rank 2.97 -> 30 + 0.97 * (100 - 30) = 97.9.
  EXPECT_NEAR(percentile({10, 20, 30, 100}, 99), 97.9, 1e-12);
}

TEST(Stats, MeanAndPopulationStd) {
  const std::vector<double> v = {2, 4, 4, 4, 5, 5, 7, 9};
  EXPECT_DOUBLE_EQ(mean_of(v), 5.0);
  EXPECT_DOUBLE_EQ(stddev_of(v), 2.0);  // np.std, ddof = 0
  const Distribution d = summarize_ms({0.010, 0.020, 0.030}, {50, 99});
  EXPECT_NEAR(d.mean_ms, 20.0, 1e-9);
  EXPECT_NEAR(d.median_ms, 20.0, 1e-9);
  ASSERT_EQ(d.percentiles_ms.size(), 2u);
  EXPECT_NEAR(d.percentiles_ms[1].second, 29.8, 1e-9);
  EXPECT_EQ(percentile_word(99), "99");
  EXPECT_EQ(percentile_word(99.9), "99.9");
}

RequestRecord ok_record(double start, double ttft, double e2el, int64_t out, int64_t in,
                        std::vector<double> itl) {
  RequestRecord r;
  r.success = true;
  r.start_s = start;
  r.ttft_s = ttft;
  r.e2el_s = e2el;
  r.output_tokens = out;
  r.output_tokens_from_usage = true;
  r.prompt_tokens = in;
  r.prompt_tokens_from_usage = true;
  r.itl_s = std::move(itl);
  return r;
}

TEST(Stats, ComputeMetricsByHand) {
  std::vector<RequestRecord> recs;
  // A: 5 tokens, TTFT 0.1, E2EL 0.5 -> TPOT 0.1. Starts at 0.
  recs.push_back(ok_record(0.0, 0.1, 0.5, 5, 10, {0.1, 0.1, 0.1, 0.1}));
  // B: 3 tokens, TTFT 0.2, E2EL 0.6 -> TPOT 0.2. Starts at 0.2, overlaps A.
  recs.push_back(ok_record(0.2, 0.2, 0.6, 3, 20, {0.2, 0.2}));
  // C: 1 token -> no TPOT entry. Starts exactly when A ends (half-open: no overlap with A).
  recs.push_back(ok_record(0.5, 0.3, 0.3, 1, 30, {}));
  RequestRecord bad;
  bad.error = "HTTP 500";
  recs.push_back(bad);

  GoodputSlo slo;
  slo.ttft_ms = 250;  // A and B are good on TTFT, C (300 ms) is not
  const BenchMetrics m = compute_metrics(recs, 2.0, {50, 99}, slo);
  EXPECT_EQ(m.completed, 3);
  EXPECT_EQ(m.failed, 1);
  EXPECT_EQ(m.total_input, 60);
  EXPECT_EQ(m.total_output, 9);
  EXPECT_DOUBLE_EQ(m.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(m.output_throughput, 4.5);
  EXPECT_DOUBLE_EQ(m.total_token_throughput, 34.5);
  ASSERT_TRUE(m.request_goodput.has_value());
  EXPECT_DOUBLE_EQ(*m.request_goodput, 1.0);
  EXPECT_NEAR(m.ttft.mean_ms, 200.0, 1e-9);
  EXPECT_NEAR(m.ttft.median_ms, 200.0, 1e-9);
  EXPECT_NEAR(m.tpot.mean_ms, 150.0, 1e-9);  // (100 + 200) / 2
  EXPECT_NEAR(m.itl.mean_ms, (0.4 + 0.4) / 6 * 1000.0, 1e-9);
  EXPECT_NEAR(m.e2el.mean_ms, (0.5 + 0.6 + 0.3) / 3 * 1000.0, 1e-9);
  EXPECT_NEAR(m.e2el.percentiles_ms[1].second, (0.5 + 0.98 * 0.1) * 1000.0, 1e-9);
  EXPECT_EQ(m.max_concurrent_requests, 2);  // A with B, then B with C
  // Chunk times: A 0.1..0.5 (5), B 0.4, 0.6, 0.8 (3), C 0.8 -> all in second 0.
  EXPECT_DOUBLE_EQ(m.max_output_tokens_per_s, 9.0);
  EXPECT_EQ(m.output_lens, (std::vector<int64_t>{5, 3, 1, 0}));
}

TEST(Stats, ReportLayoutFollowsVllm) {
  std::vector<RequestRecord> recs = {ok_record(0.0, 0.1, 0.5, 5, 10, {0.1, 0.1, 0.1, 0.1})};
  const BenchMetrics m = compute_metrics(recs, 1.0, {99}, {});
  ReportInfo info;
  info.request_rate = INFINITY;
  info.max_concurrency = 4;
  info.percentile_metrics = {"ttft", "e2el"};
  info.percentiles = {99};
  const std::string r = format_report(m, info);
  EXPECT_NE(r.find("============ Serving Benchmark Result ============\n"), std::string::npos);
  EXPECT_NE(r.find("Successful requests:                     1         \n"), std::string::npos);
  EXPECT_NE(r.find("Maximum request concurrency:             4"), std::string::npos);
  EXPECT_EQ(r.find("Request rate configured"), std::string::npos);  // inf is not printed
  EXPECT_NE(r.find("---------------Time to First Token----------------\n"), std::string::npos);
  EXPECT_NE(r.find("Mean TTFT (ms):                          100.00"), std::string::npos);
  EXPECT_NE(r.find("P99 E2EL (ms):                           500.00"), std::string::npos);
  EXPECT_EQ(r.find("TPOT"), std::string::npos);  // not selected
  EXPECT_NE(r.find("not reported"), std::string::npos);
}

TEST(Sse, AnySplitGivesTheSameEvents) {
  const std::string stream =
      ": ping\r\n\r\n"
      "data: {\"a\":1}\r\n\r\n"
      "event: error\ndata: line1\ndata:line2\n\n"
      "id: 7\ndata: [DONE]\n\n"
      "data: tail-without-blank-line";
  std::vector<SseEvent> whole;
  {
    SseParser p;
    whole = p.feed(stream);
    for (auto& e : p.finish()) whole.push_back(e);
  }
  ASSERT_EQ(whole.size(), 4u);
  EXPECT_EQ(whole[0].data, "{\"a\":1}");
  EXPECT_EQ(whole[1].event, "error");
  EXPECT_EQ(whole[1].data, "line1\nline2");
  EXPECT_EQ(whole[2].data, "[DONE]");
  EXPECT_EQ(whole[3].data, "tail-without-blank-line");
  for (size_t step : {1, 2, 3, 7}) {
    SseParser p;
    std::vector<SseEvent> got;
    for (size_t i = 0; i < stream.size(); i += step)
      for (auto& e : p.feed(std::string_view(stream).substr(i, step))) got.push_back(e);
    for (auto& e : p.finish()) got.push_back(e);
    ASSERT_EQ(got.size(), whole.size()) << step;
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].data, whole[k].data);
      EXPECT_EQ(got[k].event, whole[k].event);
    }
  }
}

SseEvent data(const std::string& d) {
  return SseEvent{"", d};
}

TEST(Sse, ChatAccumulatorTimesTokenChunks) {
  StreamAccumulator a(ApiKind::kChat);
  // Role chunk with empty content: not a token (vLLM would start TTFT here).
  EXPECT_TRUE(a.on_event(
      data(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})"), 0.05));
  EXPECT_FALSE(a.has_first_token());
  EXPECT_TRUE(a.on_event(
      data(R"({"choices":[{"delta":{"reasoning":"hm","reasoning_content":"hm"}}]})"), 0.10));
  EXPECT_TRUE(a.on_event(data(R"({"choices":[{"delta":{"content":"Hi"}}]})"), 0.13));
  EXPECT_TRUE(a.on_event(data(R"({"choices":[{"delta":{"tool_calls":[{"index":0}]}}]})"), 0.17));
  EXPECT_TRUE(a.on_event(data(R"({"choices":[{"delta":{},"finish_reason":"stop"}]})"), 0.20));
  EXPECT_TRUE(a.on_event(
      data(R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":4}})"), 0.30));
  EXPECT_FALSE(a.on_event(data("[DONE]"), 0.31));
  EXPECT_TRUE(a.done());
  EXPECT_FALSE(a.failed());
  EXPECT_DOUBLE_EQ(a.ttft_s(), 0.10);
  EXPECT_DOUBLE_EQ(a.end_s(), 0.20);  // last chunk with choices, not usage or [DONE]
  ASSERT_EQ(a.itl_s().size(), 2u);
  EXPECT_NEAR(a.itl_s()[0], 0.03, 1e-12);
  EXPECT_NEAR(a.itl_s()[1], 0.04, 1e-12);
  EXPECT_EQ(a.token_chunks(), 3);
  EXPECT_EQ(a.text(), "Hi");
  EXPECT_EQ(*a.usage_prompt_tokens(), 12);
  EXPECT_EQ(*a.usage_completion_tokens(), 4);
}

TEST(Sse, CompletionsAndFailures) {
  StreamAccumulator c(ApiKind::kCompletions);
  EXPECT_TRUE(c.on_event(data(R"({"choices":[{"text":"a"}]})"), 0.1));
  EXPECT_TRUE(c.on_event(data(R"({"choices":[{"text":"b"}]})"), 0.2));
  EXPECT_EQ(c.text(), "ab");
  EXPECT_EQ(c.token_chunks(), 2);
  EXPECT_FALSE(c.usage_completion_tokens().has_value());

  StreamAccumulator bad(ApiKind::kChat);
  EXPECT_FALSE(bad.on_event(data("{not json"), 0.1));
  EXPECT_TRUE(bad.failed());
  EXPECT_NE(bad.error().find("malformed"), std::string::npos);

  StreamAccumulator err(ApiKind::kChat);
  EXPECT_FALSE(err.on_event(data(R"({"error":{"message":"engine died","code":500}})"), 0.1));
  EXPECT_NE(err.error().find("engine died"), std::string::npos);

  StreamAccumulator flat(ApiKind::kChat);
  EXPECT_FALSE(flat.on_event(data(R"({"object":"error","message":"old shape"})"), 0.1));
  EXPECT_NE(flat.error().find("old shape"), std::string::npos);
}

TEST(SpecDecode, ParsesVllmCountersAndDeltas) {
  const std::string before = R"(# HELP vllm:spec_decode_num_drafts_total Number of drafts.
# TYPE vllm:spec_decode_num_drafts_total counter
vllm:spec_decode_num_drafts_total{engine="0",model_name="m"} 100.0
vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="m"} 300.0
vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="m"} 150.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="0"} 80.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="1"} 50.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="2"} 20.0
vllm:spec_decode_num_drafts_created 1.7e9
vllm:num_requests_running{model_name="spec_decode_num_drafts_total"} 3
)";
  const std::string after = R"(vllm:spec_decode_num_drafts_total{engine="0",model_name="m"} 200
vllm:spec_decode_num_draft_tokens_total{engine="0",model_name="m"} 600
vllm:spec_decode_num_accepted_tokens_total{engine="0",model_name="m"} 390
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="0"} 170
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="1"} 140
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine="0",model_name="m",position="2"} 80
)";
  const auto b = parse_spec_decode_metrics(before);
  const auto a = parse_spec_decode_metrics(after);
  ASSERT_TRUE(b && a);
  EXPECT_EQ(b->num_drafts, 100);  // the label value and the _created sample are not counted
  EXPECT_EQ(b->num_accepted_tokens, 150);
  EXPECT_EQ(b->accepted_per_pos.at(2), 20);
  const auto d = spec_decode_delta(*b, *a);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->drafts, 100);
  EXPECT_EQ(d->draft_tokens, 300);
  EXPECT_EQ(d->accepted_tokens, 240);
  EXPECT_DOUBLE_EQ(d->acceptance_rate_pct, 80.0);
  EXPECT_NEAR(d->acceptance_length, 3.4, 1e-12);
  EXPECT_EQ(d->per_position, (std::vector<double>{0.9, 0.9, 0.6}));
  EXPECT_FALSE(spec_decode_delta(*a, *a));  // no drafts in between
  EXPECT_FALSE(parse_spec_decode_metrics("vllm:num_requests_running 1\n"));
}

TEST(Workload, PoissonArrivalsForFixedSeed) {
  const std::vector<double> t = arrival_times(1000, 10.0, 1.0, 42);
  ASSERT_EQ(t.size(), 1000u);
  EXPECT_TRUE(std::is_sorted(t.begin(), t.end()));
  EXPECT_NEAR(t.back(), 100.0, 1e-9);                // rescaled so the last arrival is n / rate
  EXPECT_EQ(t, arrival_times(1000, 10.0, 1.0, 42));  // deterministic
  EXPECT_NE(t, arrival_times(1000, 10.0, 1.0, 43));
  // Arrivals in the first 50 s: Poisson with mean ~500, sd ~22; 5 sd band.
  const auto in_half = std::count_if(t.begin(), t.end(), [](double x) { return x < 50.0; });
  EXPECT_GT(in_half, 390);
  EXPECT_LT(in_half, 610);
  // Gaps look exponential: mean 0.1 s, coefficient of variation near 1.
  std::vector<double> gaps;
  for (size_t i = 1; i < t.size(); ++i) gaps.push_back(t[i] - t[i - 1]);
  EXPECT_NEAR(mean_of(gaps), 0.1, 0.005);
  EXPECT_NEAR(stddev_of(gaps) / mean_of(gaps), 1.0, 0.15);
  // Gamma gaps with burstiness 4 are far more regular.
  const std::vector<double> g = arrival_times(1000, 10.0, 4.0, 42);
  std::vector<double> ggaps;
  for (size_t i = 1; i < g.size(); ++i) ggaps.push_back(g[i] - g[i - 1]);
  EXPECT_NEAR(stddev_of(ggaps) / mean_of(ggaps), 0.5, 0.1);
  for (double x : arrival_times(5, INFINITY, 1.0, 0)) EXPECT_EQ(x, 0.0);
}

TEST(Workload, RandomPromptsHaveTheRequestedLengths) {
  const auto items = random_workload(50, 100, 20, 0.5, 7);
  ASSERT_EQ(items.size(), 50u);
  bool lengths_vary = false;
  for (const WorkItem& w : items) {
    EXPECT_EQ(count_words(w.prompt), w.est_prompt_tokens);
    EXPECT_GE(w.est_prompt_tokens, 50);
    EXPECT_LE(w.est_prompt_tokens, 150);
    EXPECT_GE(w.max_tokens, 10);
    EXPECT_LE(w.max_tokens, 30);
    lengths_vary = lengths_vary || w.est_prompt_tokens != items[0].est_prompt_tokens;
  }
  EXPECT_TRUE(lengths_vary);
  EXPECT_NE(items[0].prompt, items[1].prompt);
  EXPECT_EQ(random_workload(50, 100, 20, 0.5, 7)[3].prompt, items[3].prompt);
  const auto fixed = random_workload(3, 64, 1, 0.0, 1);
  for (const WorkItem& w : fixed) {
    EXPECT_EQ(w.est_prompt_tokens, 64);
    EXPECT_EQ(w.max_tokens, 1);
  }
  EXPECT_EQ(length_range(10, 0.25, 1).lo, 7);   // floor(7.5)
  EXPECT_EQ(length_range(10, 0.25, 1).hi, 13);  // ceil(12.5)
  EXPECT_THROW(length_range(10, 1.0, 1), Error);
}

std::string temp_file(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Workload, FilePrompts) {
  const std::string jsonl = temp_file(
      "bs_prompts.jsonl", "{\"prompt\":\"one two\"}\n\n{\"prompt\":\"three\",\"output_len\":5}\n");
  const auto a = file_workload(jsonl, 3, 9);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].prompt, "one two");
  EXPECT_EQ(a[0].max_tokens, 9);
  EXPECT_EQ(a[0].est_prompt_tokens, 2);
  EXPECT_EQ(a[1].max_tokens, 5);
  EXPECT_EQ(a[2].prompt, "one two");  // cycled
  const std::string txt = temp_file("bs_prompts.txt", "Hello there\r\nSecond {prompt}\n");
  const auto b = file_workload(txt, 2, 4);
  EXPECT_EQ(b[0].prompt, "Hello there");
  EXPECT_EQ(b[1].prompt, "Second {prompt}");
  const std::string broken = temp_file("bs_broken.jsonl", "{\"prompt\":\"x\"}\n{\"text\":1}\n");
  try {
    file_workload(broken, 2, 4);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(":2:"), std::string::npos) << e.what();
  }
  // A JSONL line nested past the limit is a named error, not a stack overflow.
  const std::string deep =
      temp_file("bs_deep.jsonl", "{\"prompt\":\"x\"}\n" + std::string(100'000, '[') + "\n");
  try {
    file_workload(deep, 2, 4);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(":2: JSON nested deeper than 256 levels"),
              std::string::npos)
        << e.what();
  }
}

BenchOptions parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return parse_bench_options(static_cast<int>(argv.size()), argv.data(), 0);
}

TEST(Options, VllmFlagNames) {
  const BenchOptions o = parse({"--base-url",
                                "http://127.0.0.1:9/x",
                                "--endpoint=/v1/completions",
                                "--model",
                                "m",
                                "--num-prompts",
                                "7",
                                "--request-rate",
                                "2.5",
                                "--max-concurrency",
                                "3",
                                "--random-input-len",
                                "11",
                                "--random-output-len",
                                "12",
                                "--random-range-ratio",
                                "0.1",
                                "--seed",
                                "5",
                                "--ignore-eos",
                                "--api-key",
                                "k",
                                "--result-file",
                                "r.json",
                                "--percentile-metrics",
                                "ttft,e2el",
                                "--metric-percentiles",
                                "50,99.9",
                                "--timeout",
                                "1.5",
                                "--goodput",
                                "ttft:100",
                                "tpot:20",
                                "--header",
                                "a=b",
                                "--disable-tqdm"});
  EXPECT_EQ(o.base_url, "http://127.0.0.1:9/x");
  EXPECT_EQ(o.endpoint, "/v1/completions");
  EXPECT_EQ(o.num_prompts, 7);
  EXPECT_DOUBLE_EQ(o.request_rate, 2.5);
  EXPECT_EQ(*o.max_concurrency, 3);
  EXPECT_EQ(o.random_input_len, 11);
  EXPECT_EQ(o.random_output_len, 12);
  EXPECT_EQ(o.seed, 5u);
  EXPECT_TRUE(o.ignore_eos);
  EXPECT_EQ(o.percentile_metrics, (std::vector<std::string>{"ttft", "e2el"}));
  EXPECT_EQ(o.metric_percentiles, (std::vector<double>{50, 99.9}));
  EXPECT_DOUBLE_EQ(*o.goodput.ttft_ms, 100);
  EXPECT_DOUBLE_EQ(*o.goodput.tpot_ms, 20);
  EXPECT_EQ(o.headers.size(), 1u);
  EXPECT_TRUE(o.disable_progress);
  EXPECT_TRUE(std::isinf(parse({"--request-rate", "inf"}).request_rate));
  EXPECT_EQ(parse({"--backend", "openai"}).endpoint, "/v1/completions");
  EXPECT_EQ(parse({"--dataset-path", "p.txt"}).dataset_name, "file");
  EXPECT_THROW(parse({"--bogus"}), Error);
  EXPECT_THROW(parse({"--num-prompts", "x"}), Error);
  EXPECT_THROW(parse({"--percentile-metrics", "ttft,foo"}), Error);
  EXPECT_THROW(parse({"--dataset-name", "file"}), Error);
  EXPECT_THROW(parse({"--request-rate", "0"}), Error);
  EXPECT_EQ(parse({"--extra-body", "{\"a\": [1]}"}).extra_body["a"][0], 1);
  EXPECT_THROW(parse({"--extra-body", "[1]"}), Error);
  // 10^5 levels would overflow the stack when the body is dumped: refused while parsing.
  const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  try {
    parse({"--extra-body", deep});
    FAIL() << "deep --extra-body accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("flag --extra-body: JSON nested deeper than 256 levels"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(bench_serve_usage().empty());
}

TEST(Client, BaseUrlAndBody) {
  const ServerAddress a = parse_base_url("https://example.org:8443/api/");
  EXPECT_EQ(a.scheme_host_port, "https://example.org:8443");
  EXPECT_EQ(a.path_prefix, "/api");
  EXPECT_THROW(parse_base_url("example.org"), Error);
  RequestTemplate t;
  t.model = "m";
  t.ignore_eos = true;
  t.extra_body = {{"chat_template_kwargs", {{"enable_thinking", false}}}};
  const auto chat = build_request_body(t, "hi", 9);
  EXPECT_EQ(chat["messages"][0]["content"], "hi");
  EXPECT_EQ(chat["max_completion_tokens"], 9);
  EXPECT_EQ(chat["stream"], true);
  EXPECT_EQ(chat["stream_options"]["include_usage"], true);
  EXPECT_EQ(chat["ignore_eos"], true);
  EXPECT_EQ(chat["chat_template_kwargs"]["enable_thinking"], false);
  t.kind = ApiKind::kCompletions;
  const auto comp = build_request_body(t, "hi", 9);
  EXPECT_EQ(comp["prompt"], "hi");
  EXPECT_EQ(comp["max_tokens"], 9);
  EXPECT_FALSE(comp.contains("messages"));
}

}  // namespace
}  // namespace fc::benchserve
