#include "server/metrics.h"

#include <cstdio>

namespace fc {

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help,
                       const std::string& labels) const {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cum = 0;
  char buf[64];
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    if (i < bounds_.size()) std::snprintf(buf, sizeof buf, "%g", bounds_[i]);
    out += name + "_bucket{" + labels + ",le=\"" + (i < bounds_.size() ? buf : "+Inf") + "\"} " +
           std::to_string(cum) + "\n";
  }
  std::snprintf(buf, sizeof buf, "%.6f", sum_);
  out += name + "_sum{" + labels + "} " + buf + "\n";
  out += name + "_count{" + labels + "} " + std::to_string(count_) + "\n";
}

namespace {
// Seconds; vLLM's buckets for TTFT / ITL / e2e (vllm/v1/metrics/loggers.py).
const std::vector<double> kTtft = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25, 0.5,
                                   0.75,  1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0};
const std::vector<double> kItl = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                  0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
const std::vector<double> kE2e = {0.3,  0.5,  0.8,  1.0,  1.5,  2.0,   2.5,   5.0,   10.0, 15.0,
                                  20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0};
}  // namespace

Metrics::Metrics() : ttft_(kTtft), itl_(kItl), e2e_(kE2e) {}

void Metrics::observe_ttft(double s) {
  std::lock_guard<std::mutex> lk(mu_);
  ttft_.observe(s);
}
void Metrics::observe_itl(double s) {
  std::lock_guard<std::mutex> lk(mu_);
  itl_.observe(s);
}
void Metrics::observe_e2e(double s) {
  std::lock_guard<std::mutex> lk(mu_);
  e2e_.observe(s);
}
void Metrics::count_finished(const std::string& reason) {
  std::lock_guard<std::mutex> lk(mu_);
  ++finished_[reason];
}
void Metrics::count_http(int status) {
  std::lock_guard<std::mutex> lk(mu_);
  ++http_[status];
}

std::string Metrics::render(const EngineStats& e, const std::string& model_name) const {
  std::lock_guard<std::mutex> lk(mu_);
  const std::string l = "model_name=\"" + model_name + "\"";
  std::string out;
  auto gauge = [&](const std::string& n, const std::string& help, double v,
                   const char* type = "gauge") {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    out += "# HELP " + n + " " + help + "\n# TYPE " + n + " " + type + "\n" + n + "{" + l + "} " +
           buf + "\n";
  };
  gauge("vllm:num_requests_running", "Requests in model execution batches.", e.running);
  gauge("vllm:num_requests_waiting", "Requests waiting to be processed.", e.waiting);
  const double usage = e.kv_blocks_total ? 1.0 - double(e.kv_blocks_free) / e.kv_blocks_total : 0.0;
  gauge("vllm:kv_cache_usage_perc", "KV-cache usage (full-attention group). 1 means 100 percent.",
        usage);
  gauge("fourcast:kv_blocks_total", "KV blocks of the full-attention group.", e.kv_blocks_total);
  gauge("fourcast:kv_blocks_free",
        "Free (or evictable cached) KV blocks of the full-attention group.", e.kv_blocks_free);
  gauge("vllm:prompt_tokens_total", "Prefill tokens processed.", double(e.prompt_tokens),
        "counter");
  gauge("vllm:generation_tokens_total", "Generation tokens processed.", double(e.generation_tokens),
        "counter");
  gauge("vllm:num_preemptions_total", "Cumulative preemptions.", double(e.preemptions), "counter");
  gauge("vllm:prefix_cache_queries_total", "Prefix cache queries, in tokens.",
        double(e.prefix_query_tokens), "counter");
  gauge("vllm:prefix_cache_hits_total", "Prefix cache hits, in tokens.",
        double(e.prefix_hit_tokens), "counter");
  gauge("fourcast:encoder_cache_queries_total",
        "Encoder-output cache lookups (media items whose soft tokens a step needed).",
        double(e.encoder_cache_queries), "counter");
  gauge("fourcast:encoder_cache_hits_total", "Encoder-output cache hits.",
        double(e.encoder_cache_hits), "counter");
  gauge("fourcast:mm_items_encoded_total", "Media items (images, video frames) encoded.",
        double(e.mm_items_encoded), "counter");
  gauge("vllm:spec_decode_num_drafts_total",
        "Verification steps that carried drafts (speculation off: 0).", double(e.spec_drafts),
        "counter");
  gauge("vllm:spec_decode_num_draft_tokens_total", "Draft tokens verified.",
        double(e.spec_draft_tokens), "counter");
  gauge("vllm:spec_decode_num_accepted_tokens_total", "Draft tokens accepted.",
        double(e.spec_accepted_tokens), "counter");
  out +=
      "# HELP vllm:spec_decode_num_accepted_tokens_per_pos_total Accepted drafts by position.\n"
      "# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter\n";
  for (size_t i = 0; i < e.spec_accepted_per_pos.size(); ++i)
    out += "vllm:spec_decode_num_accepted_tokens_per_pos_total{" + l + ",position=\"" +
           std::to_string(i) + "\"} " + std::to_string(e.spec_accepted_per_pos[i]) + "\n";
  gauge("fourcast:spec_decode_mean_acceptance_length",
        "1 + accepted / drafts (includes the bonus or recovered token; 0 before any draft).",
        e.spec_drafts ? 1.0 + double(e.spec_accepted_tokens) / double(e.spec_drafts) : 0.0);
  gauge("fourcast:engine_steps_total", "Engine steps run.", double(e.steps), "counter");
  out +=
      "# HELP vllm:request_success_total Finished requests by finish reason.\n"
      "# TYPE vllm:request_success_total counter\n";
  for (const auto& [reason, n] : finished_)
    out += "vllm:request_success_total{" + l + ",finished_reason=\"" + reason + "\"} " +
           std::to_string(n) + "\n";
  out +=
      "# HELP fourcast:http_responses_total HTTP responses by status.\n"
      "# TYPE fourcast:http_responses_total counter\n";
  for (const auto& [status, n] : http_)
    out += "fourcast:http_responses_total{status=\"" + std::to_string(status) + "\"} " +
           std::to_string(n) + "\n";
  ttft_.render(out, "vllm:time_to_first_token_seconds", "Time to first token.", l);
  itl_.render(out, "vllm:inter_token_latency_seconds", "Time between output token events.", l);
  e2e_.render(out, "vllm:e2e_request_latency_seconds", "End-to-end request latency.", l);
  return out;
}

std::string Metrics::render_http(const http::ServerStats& s) const {
  std::string out;
  auto sample = [&](const std::string& name, const char* type, const std::string& help,
                    const std::vector<std::pair<std::string, int64_t>>& values) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, v] : values)
      out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(v) + "\n";
  };
  sample("fourcast:http_connections_open", "gauge", "Open client connections.",
         {{"", s.connections_open}});
  sample("fourcast:http_connections_max", "gauge", "The connection cap (--max-connections).",
         {{"", s.max_connections}});
  sample("fourcast:http_requests_in_flight", "gauge",
         "Requests being handled, waiting on the engine or streaming.",
         {{"", s.requests_in_flight}});
  sample("fourcast:http_tasks_queued", "gauge", "Handler and stream tasks waiting for a worker.",
         {{"", s.tasks_queued}});
  sample("fourcast:http_connections_accepted_total", "counter", "Connections accepted.",
         {{"", s.connections_accepted}});
  sample("fourcast:http_rejected_total", "counter",
         "Requests refused with 503: the connection cap reached, or the server draining.",
         {{"reason=\"max_connections\"", s.rejected_max_connections},
          {"reason=\"draining\"", s.rejected_draining}});
  sample("fourcast:http_timeouts_total", "counter",
         "Connections closed at a deadline: request head, request body, keep-alive idle, no "
         "write progress.",
         {{"phase=\"head\"", s.timeouts_head},
          {"phase=\"body\"", s.timeouts_body},
          {"phase=\"idle\"", s.timeouts_idle},
          {"phase=\"write\"", s.timeouts_write}});
  sample("fourcast:http_limit_errors_total", "counter",
         "Requests refused for a size limit (413, 414, 431).", {{"", s.limit_errors}});
  sample("fourcast:http_bad_requests_total", "counter",
         "Requests refused as malformed HTTP (400, 501, 505).", {{"", s.bad_requests}});
  sample("fourcast:http_client_gone_total", "counter",
         "Clients that disconnected while their request was in flight.", {{"", s.client_gone}});
  sample("fourcast:http_accept_errors_total", "counter",
         "accept() failures (e.g. out of file descriptors).", {{"", s.accept_errors}});
  sample("fourcast:http_draining", "gauge", "1 while the server drains after SIGTERM.",
         {{"", s.draining ? 1 : 0}});
  return out;
}

}  // namespace fc
