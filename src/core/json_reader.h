// Typed reads of the keys of one JSON object from a config file (config.json,
// quantization_config, hf_quant_config.json, speculator configs): a present key of the wrong
// type or out of range is an fc::Error naming the file, the object and the key; null counts as
// absent (transformers writes null for unset optionals). Never throws nlohmann's own exceptions,
// whose messages name no key.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "core/error.h"

namespace fc {

struct JsonReader {
  const nlohmann::json& obj;  // need not be an object: then every key is absent
  std::string where;          // e.g. "config.json: text_config"

  const nlohmann::json* get(const char* key) const {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
  }
  [[noreturn]] void bad(const char* key, const char* want) const {
    fail(where, ": key '", key, "' must be ", want, ", got ", get(key)->dump());
  }
  int integer(const char* key, int dflt, int min_value = 0) const {
    const nlohmann::json* v = get(key);
    if (!v) return dflt;
    if (!v->is_number_integer()) bad(key, "an integer");
    // Unsigned values above INT64_MAX read as negative and fail the range check too.
    const int64_t x = v->get<int64_t>();
    if (x < min_value || x > (int64_t{1} << 31) - 1)
      fail(where, ": key '", key, "' = ", v->dump(), " is out of range (min ", min_value, ")");
    return static_cast<int>(x);
  }
  std::optional<int> opt_integer(const char* key, int min_value = 0) const {
    if (!get(key)) return std::nullopt;
    return integer(key, 0, min_value);
  }
  double number(const char* key, double dflt) const {
    const nlohmann::json* v = get(key);
    if (!v) return dflt;
    if (!v->is_number()) bad(key, "a number");
    return v->get<double>();
  }
  bool boolean(const char* key, bool dflt) const {
    const nlohmann::json* v = get(key);
    if (!v) return dflt;
    if (!v->is_boolean()) bad(key, "true or false");
    return v->get<bool>();
  }
  std::string string(const char* key, const std::string& dflt) const {
    const nlohmann::json* v = get(key);
    if (!v) return dflt;
    if (!v->is_string()) bad(key, "a string");
    return v->get<std::string>();
  }
  // A nested object (nullptr when absent); any other type is an error.
  const nlohmann::json* object(const char* key) const {
    const nlohmann::json* v = get(key);
    if (v && !v->is_object()) bad(key, "an object");
    return v;
  }
};

}  // namespace fc
