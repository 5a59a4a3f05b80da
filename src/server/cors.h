// CORS as vLLM configures it: FastAPI's (Starlette's) CORSMiddleware with vLLM's flags
// --allowed-origins, --allowed-methods, --allowed-headers (JSON lists, default ["*"]) and
// --allow-credentials (default off) [vllm-project/vllm: vllm/entrypoints/openai/cli_args.py,
// api_server.py `app.add_middleware(CORSMiddleware, ...)`]; the rules follow
// [encode/starlette: starlette/middleware/cors.py]. Independent of the HTTP library: the caller
// passes the request's method and headers and applies the answer.
//  - A request without an Origin header is not a CORS request: nothing changes.
//  - A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here, never
//    routed: 200 "OK" when origin, method and requested headers are all allowed, else 400
//    "Disallowed CORS origin, method, headers" (the failures listed) — the browser then blocks
//    the real request.
//  - Any other request with an Origin is served as usual, with the "simple" headers added.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "server/serve_options.h"

namespace fc {

struct CorsOptions {
  std::vector<std::string> allowed_origins = {"*"};
  std::vector<std::string> allowed_methods = {"*"};
  std::vector<std::string> allowed_headers = {"*"};
  bool allow_credentials = false;
  int max_age = 600;  // seconds; Starlette's default (vLLM does not set it)
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct CorsRequest {
  std::string method;                          // "OPTIONS", "POST", ...
  std::optional<std::string> origin;           // Origin
  std::optional<std::string> request_method;   // Access-Control-Request-Method
  std::optional<std::string> request_headers;  // Access-Control-Request-Headers
  bool has_cookie = false;                     // a Cookie header was sent
};

struct CorsPreflight {
  int status = 200;
  std::string body;  // text/plain
  HeaderList headers;
};

class CorsPolicy {
 public:
  explicit CorsPolicy(CorsOptions o);
  // The preflight answer, or nullopt when the request is not a preflight.
  std::optional<CorsPreflight> preflight(const CorsRequest& r) const;
  // Headers to add to the response of an ordinary request (empty without Origin).
  HeaderList response_headers(const CorsRequest& r) const;
  bool origin_allowed(const std::string& origin) const;

 private:
  CorsOptions o_;
  bool all_origins_, all_headers_;
  std::vector<std::string> methods_;        // "*" expanded to Starlette's ALL_METHODS
  std::vector<std::string> headers_lower_;  // allowed headers plus the safelisted ones
  std::string headers_joined_;              // as sent in Access-Control-Allow-Headers
};

// The policy the serve flags describe.
CorsOptions cors_options(const ServeOptions& o);

// Parses a JSON list of strings given to one of the CORS flags; throws fc::Error naming it.
std::vector<std::string> parse_cors_list(const std::string& flag, const std::string& value);

}  // namespace fc
