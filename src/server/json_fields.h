// Readers of one field of a JSON request body, for the request parsers: absent or null means
// "not given"; a value of the wrong type is an ApiError(400) naming the field (vLLM's
// VLLMValidationError.parameter), e.g. "temperature: must be a number, got \"hot\"".
#pragma once

#include <climits>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "server/api_error.h"

namespace fc::json_fields {

using nlohmann::json;

[[noreturn]] inline void bad(const std::string& field, const std::string& what) {
  throw ApiError::bad_request(field + ": " + what, field);
}

inline const json* field(const json& b, const char* k) {
  auto it = b.find(k);
  return (it == b.end() || it->is_null()) ? nullptr : &*it;
}
inline std::optional<double> num(const json& b, const char* k) {
  const json* v = field(b, k);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad(k, "must be a number, got " + v->dump());
  return v->get<double>();
}
inline std::optional<int64_t> integer(const json& b, const char* k) {
  const json* v = field(b, k);
  if (!v) return std::nullopt;
  if (v->is_number_float() &&
      v->get<double>() == static_cast<double>(static_cast<int64_t>(v->get<double>())))
    return static_cast<int64_t>(v->get<double>());  // 5.0 is accepted as 5, as pydantic does
  if (!v->is_number_integer()) bad(k, "must be an integer, got " + v->dump());
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    bad(k, "is out of range, got " + v->dump());
  return v->get<int64_t>();
}
inline std::optional<bool> boolean(const json& b, const char* k) {
  const json* v = field(b, k);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad(k, "must be true or false, got " + v->dump());
  return v->get<bool>();
}
inline std::optional<std::string> string(const json& b, const char* k) {
  const json* v = field(b, k);
  if (!v) return std::nullopt;
  if (!v->is_string()) bad(k, "must be a string, got " + v->dump());
  return v->get<std::string>();
}

}  // namespace fc::json_fields
