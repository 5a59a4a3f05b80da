// Typed reads of config.json objects for the Gemma 4 config parsers (text, vision): a present key
// of the wrong type or out of range is an error naming the key; null counts as absent
// (transformers writes null for unset optionals).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "core/error.h"

namespace fc::gemma4::detail {

using nlohmann::json;

struct Reader {
  const json& obj;
  std::string where;  // e.g. "config.json: text_config"

  const json* get(const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
  }
  [[noreturn]] void bad(const char* key, const char* want) const {
    fail(where, ": key '", key, "' must be ", want, ", got ", get(key)->dump());
  }
  int integer(const char* key, int dflt, int min_value = 0) const {
    const json* v = get(key);
    if (!v) return dflt;
    if (!v->is_number_integer()) bad(key, "an integer");
    const int64_t x = v->get<int64_t>();
    if (x < min_value || x > (int64_t{1} << 31) - 1)
      fail(where, ": key '", key, "' = ", x, " is out of range (min ", min_value, ")");
    return static_cast<int>(x);
  }
  std::optional<int> opt_integer(const char* key, int min_value = 0) const {
    if (!get(key)) return std::nullopt;
    return integer(key, 0, min_value);
  }
  double number(const char* key, double dflt) const {
    const json* v = get(key);
    if (!v) return dflt;
    if (!v->is_number()) bad(key, "a number");
    return v->get<double>();
  }
  bool boolean(const char* key, bool dflt) const {
    const json* v = get(key);
    if (!v) return dflt;
    if (!v->is_boolean()) bad(key, "true or false");
    return v->get<bool>();
  }
  std::string string(const char* key, const std::string& dflt) const {
    const json* v = get(key);
    if (!v) return dflt;
    if (!v->is_string()) bad(key, "a string");
    return v->get<std::string>();
  }
};

}  // namespace fc::gemma4::detail
