#include "http/router.h"

#include <algorithm>
#include <string_view>

#include "core/error.h"

namespace fc::http {
namespace {

std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i <= path.size()) {
    const size_t j = path.find('/', i);
    const size_t end = j == std::string_view::npos ? path.size() : j;
    out.push_back(path.substr(i, end - i));
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  return out;
}

bool is_param(std::string_view seg) {
  return seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
}

bool has_params(const std::string& pattern) {
  return pattern.find('{') != std::string::npos;
}

}  // namespace

void Router::add(Route r) {
  FC_CHECK(!r.pattern.empty() && r.pattern[0] == '/', "route pattern must start with '/': '",
           r.pattern, "'");
  FC_CHECK(static_cast<bool>(r.handler), "route ", r.method, " ", r.pattern, " has no handler");
  routes_.push_back(std::move(r));
}

bool Router::matches(const Route& r, const std::string& path,
                     std::map<std::string, std::string>& params) const {
  if (!has_params(r.pattern)) return r.pattern == path;
  const std::vector<std::string_view> pat = segments(r.pattern), got = segments(path);
  std::map<std::string, std::string> found;
  for (size_t i = 0; i < pat.size(); ++i) {
    const std::string_view p = pat[i];
    const bool rest = is_param(p) && p.size() > 5 && p.substr(p.size() - 4) == "...}";
    if (rest) {  // the remainder of the path, slashes included
      if (i >= got.size()) return false;
      const size_t offset = static_cast<size_t>(got[i].data() - path.data());
      if (offset >= path.size()) return false;
      found[std::string(p.substr(1, p.size() - 5))] = path.substr(offset);
      params = std::move(found);
      return true;
    }
    if (i >= got.size()) return false;
    if (is_param(p)) {
      if (got[i].empty()) return false;
      found[std::string(p.substr(1, p.size() - 2))] = std::string(got[i]);
    } else if (p != got[i]) {
      return false;
    }
  }
  if (got.size() != pat.size()) return false;
  params = std::move(found);
  return true;
}

const Route* Router::match(const std::string& method, const std::string& path,
                           std::map<std::string, std::string>& params, int& status) const {
  bool path_known = false;
  for (int pass = 0; pass < 2; ++pass) {  // literal routes first, then patterns
    for (const Route& r : routes_) {
      if (has_params(r.pattern) != (pass == 1)) continue;
      std::map<std::string, std::string> p;
      if (!matches(r, path, p)) continue;
      path_known = true;
      if (r.method != method) continue;
      params = std::move(p);
      return &r;
    }
  }
  status = path_known ? 405 : 404;
  return nullptr;
}

std::string Router::allowed_methods(const std::string& path) const {
  std::vector<std::string> methods;
  for (const Route& r : routes_) {
    std::map<std::string, std::string> p;
    if (matches(r, path, p) && std::find(methods.begin(), methods.end(), r.method) == methods.end())
      methods.push_back(r.method);
  }
  std::string out;
  for (const std::string& m : methods) out += (out.empty() ? "" : ", ") + m;
  return out;
}

}  // namespace fc::http
