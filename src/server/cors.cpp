#include "server/cors.h"

#include <algorithm>
#include <cctype>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_limits.h"

namespace fc {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t") - a + 1);
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

CorsPolicy::CorsPolicy(CorsOptions o) : o_(std::move(o)) {
  all_origins_ = contains(o_.allowed_origins, "*");
  all_headers_ = contains(o_.allowed_headers, "*");
  // Starlette's ALL_METHODS for "*".
  methods_ =
      contains(o_.allowed_methods, "*")
          ? std::vector<std::string>{"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"}
          : o_.allowed_methods;
  // sorted(SAFELISTED_HEADERS | set(allow_headers)): Python sorts by code point.
  std::set<std::string> hs = {"Accept", "Accept-Language", "Content-Language", "Content-Type"};
  for (const std::string& h : o_.allowed_headers) hs.insert(h);
  std::vector<std::string> sorted(hs.begin(), hs.end());
  headers_joined_ = join(sorted);
  for (const std::string& h : sorted) headers_lower_.push_back(lower(h));
}

bool CorsPolicy::origin_allowed(const std::string& origin) const {
  return all_origins_ || contains(o_.allowed_origins, origin);
}

std::optional<CorsPreflight> CorsPolicy::preflight(const CorsRequest& r) const {
  if (!r.origin || r.method != "OPTIONS" || !r.request_method) return std::nullopt;
  // With specific origins, or with credentials, the allowed origin is echoed (never "*").
  const bool explicit_origin = !all_origins_ || o_.allow_credentials;
  CorsPreflight p;
  if (explicit_origin)
    p.headers.emplace_back("Vary", "Origin");
  else
    p.headers.emplace_back("Access-Control-Allow-Origin", "*");
  p.headers.emplace_back("Access-Control-Allow-Methods", join(methods_));
  p.headers.emplace_back("Access-Control-Max-Age", std::to_string(o_.max_age));
  if (!all_headers_) p.headers.emplace_back("Access-Control-Allow-Headers", headers_joined_);
  if (o_.allow_credentials) p.headers.emplace_back("Access-Control-Allow-Credentials", "true");

  std::vector<std::string> failures;
  if (origin_allowed(*r.origin)) {
    if (explicit_origin) p.headers.emplace_back("Access-Control-Allow-Origin", *r.origin);
  } else {
    failures.push_back("origin");
  }
  if (!contains(methods_, *r.request_method)) failures.push_back("method");
  if (all_headers_ && r.request_headers) {
    p.headers.emplace_back("Access-Control-Allow-Headers", *r.request_headers);
  } else if (r.request_headers) {
    size_t at = 0;
    const std::string& rh = *r.request_headers;
    while (at <= rh.size()) {
      const size_t comma = std::min(rh.find(',', at), rh.size());
      if (!contains(headers_lower_, trim(lower(rh.substr(at, comma - at))))) {
        failures.push_back("headers");
        break;
      }
      at = comma + 1;
    }
  }
  if (failures.empty()) {
    p.status = 200;
    p.body = "OK";
  } else {
    p.status = 400;
    p.body = "Disallowed CORS " + join(failures);
  }
  return p;
}

HeaderList CorsPolicy::response_headers(const CorsRequest& r) const {
  HeaderList h;
  if (!r.origin) return h;
  if (all_origins_ && !r.has_cookie) h.emplace_back("Access-Control-Allow-Origin", "*");
  if (o_.allow_credentials) h.emplace_back("Access-Control-Allow-Credentials", "true");
  // A request with cookies, or a policy naming origins, gets its own origin back.
  if ((all_origins_ && r.has_cookie) || (!all_origins_ && origin_allowed(*r.origin))) {
    h.emplace_back("Access-Control-Allow-Origin", *r.origin);
    h.emplace_back("Vary", "Origin");
  }
  return h;
}

CorsOptions cors_options(const ServeOptions& o) {
  CorsOptions c;
  c.allowed_origins = o.allowed_origins;
  c.allowed_methods = o.allowed_methods;
  c.allowed_headers = o.allowed_headers;
  c.allow_credentials = o.allow_credentials;
  return c;
}

std::vector<std::string> parse_cors_list(const std::string& flag, const std::string& value) {
  nlohmann::json j;
  try {
    j = parse_json(value);
  } catch (const JsonError& e) {
    fail("flag ", flag,
         ": not a JSON list of strings (e.g. '[\"http://localhost:3000\"]'): ", e.what());
  }
  if (!j.is_array()) fail("flag ", flag, ": must be a JSON list of strings, got ", j.dump());
  std::vector<std::string> out;
  for (const auto& x : j) {
    if (!x.is_string()) fail("flag ", flag, ": must be a JSON list of strings, got ", j.dump());
    out.push_back(x.get<std::string>());
  }
  return out;
}

}  // namespace fc
