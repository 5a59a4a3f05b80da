// generation_config.json parsing and the vLLM-style merge of request sampling fields over it
// (facts and sources in generation_config.h).
#include "sample/generation_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/json_limits.h"

namespace fc {
namespace {

using nlohmann::json;

// JSON number that is not a boolean (nlohmann reports booleans separately already).
std::optional<float> get_number(const json& j, const char* key, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) fail(origin, ": key '", key, "' must be a number, got ", it->type_name());
  const double v = it->get<double>();
  if (!std::isfinite(v)) fail(origin, ": key '", key, "' must be finite");
  return static_cast<float>(v);
}

// JSON integer (a float such as 64.0 is rejected, as vLLM rejects a non-int top_k).
std::optional<int64_t> get_integer(const json& j, const char* key, const std::string& origin) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_number_unsigned()) {
    const uint64_t u = it->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(origin, ": key '", key, "' is out of range");
    return static_cast<int64_t>(u);
  }
  if (!it->is_number_integer())
    fail(origin, ": key '", key, "' must be an integer, got ",
         it->is_number() ? "a non-integer number" : it->type_name());
  return it->get<int64_t>();
}

int32_t to_token_id(int64_t v, const char* key, const std::string& origin) {
  if (v < 0 || v > std::numeric_limits<int32_t>::max())
    fail(origin, ": key '", key, "' holds token id ", v, ", outside [0, 2^31)");
  return static_cast<int32_t>(v);
}

std::optional<int32_t> get_token_id(const json& j, const char* key, const std::string& origin) {
  const std::optional<int64_t> v = get_integer(j, key, origin);
  if (!v) return std::nullopt;
  return to_token_id(*v, key, origin);
}

}  // namespace

GenerationConfig parse_generation_config(std::string_view json_text, const std::string& origin) {
  const json j = parse_json(json_text, origin);
  if (!j.is_object()) fail(origin, ": top level must be a JSON object, got ", j.type_name());

  GenerationConfig g;
  if (auto it = j.find("do_sample"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean())
      fail(origin, ": key 'do_sample' must be a boolean, got ", it->type_name());
    g.do_sample = it->get<bool>();
  }
  g.temperature = get_number(j, "temperature", origin);
  g.top_p = get_number(j, "top_p", origin);
  g.min_p = get_number(j, "min_p", origin);
  g.repetition_penalty = get_number(j, "repetition_penalty", origin);
  if (auto k = get_integer(j, "top_k", origin)) {
    // Any k >= vocab means "off"; clamp huge values instead of overflowing int32.
    const int64_t lim = std::numeric_limits<int32_t>::max();
    if (*k < std::numeric_limits<int32_t>::min()) fail(origin, ": key 'top_k' is out of range");
    g.top_k = static_cast<int32_t>(*k > lim ? lim : *k);
  }
  g.max_new_tokens = get_integer(j, "max_new_tokens", origin);
  g.max_length = get_integer(j, "max_length", origin);
  g.bos_token_id = get_token_id(j, "bos_token_id", origin);
  g.pad_token_id = get_token_id(j, "pad_token_id", origin);
  if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
    if (it->is_array()) {
      for (size_t i = 0; i < it->size(); ++i) {
        const json& e = (*it)[i];
        if (!e.is_number_integer())
          fail(origin, ": key 'eos_token_id' must be an integer or a list of integers; element ", i,
               " is ", e.is_number() ? "a non-integer number" : e.type_name());
        g.eos_token_ids.push_back(to_token_id(e.get<int64_t>(), "eos_token_id", origin));
      }
    } else if (it->is_number_integer()) {
      g.eos_token_ids.push_back(to_token_id(it->get<int64_t>(), "eos_token_id", origin));
    } else {
      fail(origin, ": key 'eos_token_id' must be an integer or a list of integers, got ",
           it->is_number() ? "a non-integer number" : it->type_name());
    }
  }
  return g;
}

GenerationConfig load_generation_config(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open generation config ", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("cannot read generation config ", path);
  return parse_generation_config(ss.str(), path);
}

std::optional<GenerationConfig> load_generation_config_if_present(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  return load_generation_config(path);
}

SamplingParams resolve_sampling_params(const RequestSampling& request,
                                       const GenerationConfig& defaults,
                                       const GenerationDefaultsPolicy& policy) {
  // Request value, else generation-config value, else vLLM's neutral default.
  auto pick = [](const std::optional<double>& req, const std::optional<float>& def,
                 double neutral) -> double {
    if (req) return *req;
    if (def) return static_cast<double>(*def);
    return neutral;
  };
  std::optional<float> default_temperature = defaults.temperature;
  if (policy.greedy_when_do_sample_false && defaults.do_sample == false) default_temperature = 0.0f;

  double temperature = pick(request.temperature, default_temperature, 1.0);
  const double top_p = pick(request.top_p, defaults.top_p, 1.0);
  const double min_p = pick(request.min_p, defaults.min_p, 0.0);
  const double repetition = pick(request.repetition_penalty, defaults.repetition_penalty, 1.0);
  int64_t top_k = 0;
  if (request.top_k) {
    top_k = *request.top_k;
  } else if (defaults.top_k) {
    top_k = *defaults.top_k;
  }

  // SamplingParams.__post_init__: tiny positive temperatures are raised to 1e-2 (vLLM warns).
  if (temperature > 0.0 && temperature < 1e-2) temperature = 1e-2;

  if (top_k < -1) fail("top_k must be 0 (disable), or at least 1, got ", top_k, ".");
  SamplingParams p;
  p.temperature = static_cast<float>(temperature);
  p.top_p = static_cast<float>(top_p);
  p.min_p = static_cast<float>(min_p);
  p.repetition_penalty = static_cast<float>(repetition);
  p.top_k = static_cast<int>(std::min<int64_t>(top_k, std::numeric_limits<int32_t>::max()));
  p.presence_penalty = static_cast<float>(request.presence_penalty.value_or(0.0));
  p.frequency_penalty = static_cast<float>(request.frequency_penalty.value_or(0.0));
  if (request.seed && *request.seed != -1) p.seed = static_cast<uint64_t>(*request.seed);
  p.allowed_token_ids = request.allowed_token_ids;
  p.logit_bias = request.logit_bias;
  p.min_tokens = request.min_tokens;
  p.bad_words_ids = request.bad_words_ids;
  validate_sampling_params(p);

  if (p.top_k == -1) p.top_k = 0;  // both mean "off"
  if (p.is_greedy()) {
    p.top_p = 1.0f;
    p.top_k = 0;
    p.min_p = 0.0f;
  }
  return p;
}

int64_t resolve_max_tokens(std::optional<int64_t> request_max_tokens,
                           const GenerationConfig& defaults, int64_t context_room) {
  if (request_max_tokens && *request_max_tokens < 1)
    fail("max_tokens must be at least 1, got ", *request_max_tokens, ".");
  if (context_room < 1)
    fail("the prompt leaves no room to generate: ", context_room, " tokens left in the context");
  int64_t n = context_room;
  if (request_max_tokens) n = std::min(n, *request_max_tokens);
  if (defaults.max_new_tokens) n = std::min(n, *defaults.max_new_tokens);
  if (n < 1) fail("max_tokens must be at least 1, got ", n, " (generation_config max_new_tokens).");
  return n;
}

}  // namespace fc
