// An error answered to the HTTP client in OpenAI's shape (spec chat-tokenizer-api.md §6.5):
// {"error": {"message", "type", "param", "code"}} with the HTTP status as code.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace fc {

class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string param = "")
      : Error(message), status_(status), param_(std::move(param)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  static ApiError bad_request(const std::string& m, const std::string& param = "") {
    return ApiError(400, m, param);
  }

 private:
  int status_;
  std::string param_;
};

// OpenAI/vLLM error type names by status (vllm/entrypoints/openai/engine/serving.py).
inline const char* error_type(int status) {
  switch (status) {
    case 400:
      return "BadRequestError";
    case 401:
      return "AuthenticationError";
    case 404:
      return "NotFoundError";
    case 405:
      return "MethodNotAllowed";
    case 413:
      return "RequestEntityTooLarge";
    case 415:
      return "UnsupportedMediaType";
    case 422:
      return "UnprocessableEntityError";
    case 501:
      return "NotImplementedError";
    case 503:
      return "ServiceUnavailableError";
    default:
      return status >= 500 ? "InternalServerError" : "BadRequestError";
  }
}

inline nlohmann::json error_json(int status, const std::string& message, const std::string& param) {
  return {{"error",
           {{"message", message},
            {"type", error_type(status)},
            {"param", param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param)},
            {"code", status}}}};
}

}  // namespace fc
