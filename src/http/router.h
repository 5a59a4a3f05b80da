// The route table: method + path pattern -> handler. Patterns are literal paths with optional
// `{name}` segments, each matching one non-empty path segment ("/v1/models/{id}"), or a last
// `{name...}` matching the rest of the path, slashes included ("/files/{path...}"). Literal
// routes win over patterns; among patterns, the first added wins.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "http/message.h"

namespace fc::http {

struct Route {
  std::string method;   // "GET", "POST", "OPTIONS", ...
  std::string pattern;  // see above
  Handler handler;
  // Cheap and never blocking (no engine wait, no big parse): run on the I/O thread itself, so it
  // answers even when every worker is busy (/health, /metrics, /v1/models).
  bool inline_handler = false;
  // Still served while the server drains (after SIGTERM every other request gets a 503).
  bool while_draining = false;
};

class Router {
 public:
  void add(Route r);
  // The route for method + path, with its parameters in `params`; null with `status` 404 (no
  // route has this path) or 405 (some route has the path, none the method).
  const Route* match(const std::string& method, const std::string& path,
                     std::map<std::string, std::string>& params, int& status) const;
  // Methods routed for `path` ("GET, POST"), for an Allow header or CORS preflights.
  std::string allowed_methods(const std::string& path) const;

 private:
  bool matches(const Route& r, const std::string& path,
               std::map<std::string, std::string>& params) const;
  std::vector<Route> routes_;
};

}  // namespace fc::http
