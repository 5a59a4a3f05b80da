// Prometheus text exposition for /metrics, with vLLM's metric names (prefix "vllm:") so existing
// dashboards and `vllm bench serve` scrapers work. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "http/server.h"

namespace fc {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
  void observe(double v);
  void render(std::string& out, const std::string& name, const std::string& help,
              const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // last: +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void observe_ttft(double s);
  void observe_itl(double s);
  void observe_e2e(double s);
  void count_finished(const std::string& reason);
  void count_http(int status);
  std::string render(const EngineStats& e, const std::string& model_name) const;
  // The HTTP layer's connections, limits and saturation (fourcast:http_*).
  std::string render_http(const http::ServerStats& s) const;

 private:
  mutable std::mutex mu_;
  Histogram ttft_, itl_, e2e_;
  std::map<std::string, uint64_t> finished_;
  std::map<int, uint64_t> http_;
};

}  // namespace fc
