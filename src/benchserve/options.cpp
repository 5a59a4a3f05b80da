// Flag parsing for `fourcast bench serve`; names and defaults follow `vllm bench serve`
// (vllm/benchmarks/serve.py add_cli_args, vllm/benchmarks/datasets.py add_dataset_parser) except
// where the usage text says otherwise.
#include <cmath>
#include <set>

#include "benchserve/bench_serve.h"
#include "core/error.h"
#include "core/json_limits.h"
#include "core/parse.h"

namespace fc::benchserve {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (true) {
    const size_t e = s.find(sep, pos);
    std::string part = s.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
    const size_t b = part.find_first_not_of(" \t");
    const size_t l = part.find_last_not_of(" \t");
    part = b == std::string::npos ? "" : part.substr(b, l - b + 1);
    if (!part.empty()) out.push_back(part);
    if (e == std::string::npos) break;
    pos = e + 1;
  }
  return out;
}

double to_double(const std::string& flag, const std::string& v) {
  return parse_flag_double(flag, v);
}

int64_t to_int(const std::string& flag, const std::string& v) {
  return parse_flag_int(flag, v);
}

int64_t to_positive(const std::string& flag, const std::string& v) {
  const int64_t x = to_int(flag, v);
  FC_CHECK(x >= 1, "flag ", flag, " must be at least 1, got ", x);
  return x;
}

// Flags that take exactly one value.
const std::set<std::string>& value_flags() {
  static const std::set<std::string> k = {"--base-url",
                                          "--host",
                                          "--port",
                                          "--endpoint",
                                          "--backend",
                                          "--model",
                                          "--num-prompts",
                                          "--request-rate",
                                          "--burstiness",
                                          "--max-concurrency",
                                          "--dataset-name",
                                          "--dataset-path",
                                          "--random-input-len",
                                          "--random-output-len",
                                          "--random-range-ratio",
                                          "--input-len",
                                          "--output-len",
                                          "--seed",
                                          "--api-key",
                                          "--temperature",
                                          "--top-p",
                                          "--top-k",
                                          "--extra-body",
                                          "--result-file",
                                          "--result-filename",
                                          "--percentile-metrics",
                                          "--metric-percentiles",
                                          "--timeout",
                                          "--num-warmups"};
  return k;
}

// Flags that take one or more values (vLLM's nargs="+" / "*"): every following argument up to
// the next one starting with "--".
const std::set<std::string>& multi_flags() {
  static const std::set<std::string> k = {"--header", "--goodput"};
  return k;
}

const std::set<std::string>& switch_flags() {
  static const std::set<std::string> k = {"--ignore-eos", "--disable-tqdm", "--help"};
  return k;
}

void apply(BenchOptions& o, const std::string& f, const std::string& v, bool* endpoint_set,
           std::string* backend) {
  if (f == "--base-url") {
    o.base_url = v;
  } else if (f == "--host") {
    o.host = v;
  } else if (f == "--port") {
    const int64_t p = to_int(f, v);
    FC_CHECK(p >= 1 && p <= 65535, "flag --port: ", p, " is not a TCP port");
    o.port = static_cast<int>(p);
  } else if (f == "--endpoint") {
    FC_CHECK(!v.empty() && v.front() == '/', "flag --endpoint must start with '/', got '", v, "'");
    o.endpoint = v;
    *endpoint_set = true;
  } else if (f == "--backend") {
    *backend = v;
  } else if (f == "--model") {
    o.model = v;
  } else if (f == "--num-prompts") {
    o.num_prompts = static_cast<int>(to_positive(f, v));
  } else if (f == "--request-rate") {
    o.request_rate = to_double(f, v);
    FC_CHECK(o.request_rate > 0, "flag --request-rate must be positive or inf, got ", v);
  } else if (f == "--burstiness") {
    o.burstiness = to_double(f, v);
    FC_CHECK(o.burstiness > 0 && std::isfinite(o.burstiness),
             "flag --burstiness must be a positive number, got ", v);
  } else if (f == "--max-concurrency") {
    o.max_concurrency = static_cast<int>(to_positive(f, v));
  } else if (f == "--dataset-name") {
    FC_CHECK(v == "random" || v == "file" || v == "custom", "flag --dataset-name: '", v,
             "' is not supported (random, file)");
    o.dataset_name = v == "custom" ? "file" : v;
  } else if (f == "--dataset-path") {
    o.dataset_path = v;
  } else if (f == "--random-input-len" || f == "--input-len") {
    o.random_input_len = to_positive(f, v);
  } else if (f == "--random-output-len" || f == "--output-len") {
    o.random_output_len = to_positive(f, v);
  } else if (f == "--random-range-ratio") {
    o.random_range_ratio = to_double(f, v);
    FC_CHECK(o.random_range_ratio >= 0 && o.random_range_ratio < 1,
             "flag --random-range-ratio must be in [0, 1), got ", v);
  } else if (f == "--seed") {
    const int64_t s = to_int(f, v);
    FC_CHECK(s >= 0, "flag --seed must be non-negative, got ", s);
    o.seed = static_cast<uint64_t>(s);
  } else if (f == "--api-key") {
    o.api_key = v;
  } else if (f == "--temperature") {
    o.temperature = to_double(f, v);
  } else if (f == "--top-p") {
    o.top_p = to_double(f, v);
  } else if (f == "--top-k") {
    o.top_k = static_cast<int>(to_int(f, v));
  } else if (f == "--extra-body") {
    o.extra_body = parse_json(v, "flag --extra-body");  // nesting bounded: it is dumped per request
    FC_CHECK(o.extra_body.is_object(), "flag --extra-body must be a JSON object, got '", v, "'");
  } else if (f == "--result-file" || f == "--result-filename") {
    o.result_file = v;
  } else if (f == "--percentile-metrics") {
    o.percentile_metrics = split(v, ',');
    for (const std::string& m : o.percentile_metrics)
      FC_CHECK(m == "ttft" || m == "tpot" || m == "itl" || m == "e2el",
               "flag --percentile-metrics: unknown metric '", m, "' (ttft, tpot, itl, e2el)");
  } else if (f == "--metric-percentiles") {
    o.metric_percentiles.clear();
    for (const std::string& p : split(v, ',')) {
      const double x = to_double(f, p);
      FC_CHECK(x >= 0 && x <= 100, "flag --metric-percentiles: ", p, " is not in [0, 100]");
      o.metric_percentiles.push_back(x);
    }
    FC_CHECK(!o.metric_percentiles.empty(), "flag --metric-percentiles needs a value");
  } else if (f == "--timeout") {
    o.timeout_s = to_double(f, v);
    FC_CHECK(o.timeout_s > 0 && std::isfinite(o.timeout_s),
             "flag --timeout must be a positive number of seconds, got ", v);
  } else if (f == "--num-warmups") {
    const int64_t n = to_int(f, v);
    FC_CHECK(n >= 0, "flag --num-warmups must be non-negative");
    o.num_warmups = static_cast<int>(n);
  } else if (f == "--header") {
    const size_t eq = v.find('=');
    FC_CHECK(eq != std::string::npos && eq > 0, "flag --header: '", v, "' is not KEY=VALUE");
    o.headers.emplace_back(v.substr(0, eq), v.substr(eq + 1));
  } else if (f == "--goodput") {
    for (const std::string& pair : split(v, ',')) {
      const size_t c = pair.find(':');
      FC_CHECK(c != std::string::npos, "flag --goodput: '", pair, "' is not KEY:VALUE (ms)");
      const std::string key = pair.substr(0, c);
      const double ms = to_double(f, pair.substr(c + 1));
      FC_CHECK(ms >= 0, "flag --goodput: ", key, " must be non-negative");
      if (key == "ttft") {
        o.goodput.ttft_ms = ms;
      } else if (key == "tpot") {
        o.goodput.tpot_ms = ms;
      } else if (key == "e2el") {
        o.goodput.e2el_ms = ms;
      } else {
        fail("flag --goodput: unknown metric '", key, "' (ttft, tpot, e2el)");
      }
    }
  }
}

}  // namespace

BenchOptions parse_bench_options(int argc, char** argv, int first_arg) {
  BenchOptions o;
  bool endpoint_set = false;
  std::string backend;
  for (int i = first_arg; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h") a = "--help";
    FC_CHECK(a.rfind("--", 0) == 0, "unexpected argument '", a, "' (flags start with --)");
    std::string value;
    bool inline_value = false;
    if (const size_t eq = a.find('='); eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      inline_value = true;
    }
    if (switch_flags().count(a)) {
      FC_CHECK(!inline_value, "flag ", a, " takes no value");
      if (a == "--ignore-eos") o.ignore_eos = true;
      if (a == "--disable-tqdm") o.disable_progress = true;
      if (a == "--help") o.help = true;
    } else if (value_flags().count(a)) {
      if (!inline_value) {
        FC_CHECK(i + 1 < argc, "flag ", a, " needs a value");
        value = argv[++i];
      }
      apply(o, a, value, &endpoint_set, &backend);
    } else if (multi_flags().count(a)) {
      int taken = 0;
      if (inline_value) {
        apply(o, a, value, &endpoint_set, &backend);
        ++taken;
      }
      while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
        apply(o, a, argv[++i], &endpoint_set, &backend);
        ++taken;
      }
      FC_CHECK(taken > 0, "flag ", a, " needs a value");
    } else {
      fail("unknown flag ", a, " (see --help)");
    }
  }
  if (!backend.empty()) {
    // vLLM's --backend picks the request format; here the endpoint path does, so the backend only
    // chooses the default endpoint.
    if (backend == "openai" || backend == "vllm") {
      if (!endpoint_set) o.endpoint = "/v1/completions";
    } else if (backend == "openai-chat") {
      if (!endpoint_set) o.endpoint = "/v1/chat/completions";
    } else {
      fail("flag --backend: '", backend, "' is not supported (openai, vllm, openai-chat)");
    }
  }
  if (o.dataset_name == "file")
    FC_CHECK(!o.dataset_path.empty() || o.help, "--dataset-name file needs --dataset-path");
  if (!o.dataset_path.empty() && o.dataset_name == "random") o.dataset_name = "file";
  return o;
}

std::string bench_serve_usage() {
  return R"(usage: fourcast bench serve [flags]

Load generator for any OpenAI-compatible server; reports what `vllm bench serve` reports.
Every request is streamed (stream_options.include_usage=true); token counts come from the
server's usage, latencies are measured on the client.

Server:
  --base-url URL            http(s)://host:port[/prefix] (default http://HOST:PORT)
  --host H / --port P       default 127.0.0.1 / 8000
  --endpoint PATH           /v1/chat/completions (default) or /v1/completions
  --backend B               openai|vllm -> /v1/completions, openai-chat -> /v1/chat/completions
  --model NAME              default: first id of GET /v1/models
  --api-key KEY             sent as Authorization: Bearer KEY
  --header KEY=VALUE ...    extra request headers
  --timeout S               per-request limit, seconds (default 3600)

Load:
  --num-prompts N           requests to send (default 1000)
  --request-rate R          requests/s, Poisson arrivals; inf (default) sends all at once
  --burstiness B            gamma-distributed gaps with shape B (default 1 = Poisson)
  --max-concurrency C       at most C requests in flight (default: no limit, up to 1024 threads)
  --num-warmups N           unmeasured requests before the run (default 0)
  --seed S                  seeds prompts and arrivals (default 0)

Dataset:
  --dataset-name random|file
  --random-input-len L      prompt length in words, ~tokens (default 1024; alias --input-len)
  --random-output-len L     max tokens per request (default 128; alias --output-len)
  --random-range-ratio R    lengths uniform in [L*(1-R), L*(1+R)] (default 0)
  --dataset-path FILE       JSONL with "prompt" (optional "output_len") per line, or one prompt
                            per line of plain text; implies --dataset-name file

Request fields:
  --ignore-eos              send vLLM's "ignore_eos": true
  --temperature T / --top-p P / --top-k K
  --extra-body JSON         object merged into every request body

Report:
  --percentile-metrics L    of ttft,tpot,itl,e2el (default all four)
  --metric-percentiles L    e.g. 50,90,99 (default 99)
  --goodput KEY:MS ...      SLOs for goodput: ttft, tpot, e2el in ms
  --result-file PATH        JSON with every metric and per-request records
  --disable-tqdm            no progress bar on stderr
)";
}

}  // namespace fc::benchserve
