#include "apps/cli/args.h"

#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "core/parse.h"

namespace fc::cli {

Args::Args(int argc, char** argv, int first, const std::set<std::string>& with_value,
           const std::set<std::string>& switches) {
  for (int i = first; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h"))
      throw HelpRequested{{with_value.begin(), with_value.end()},
                          {switches.begin(), switches.end()}};
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      positional_.push_back(a);
      continue;
    }
    std::string value;
    bool inline_value = false;
    if (const size_t eq = a.find('='); eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      inline_value = true;
    }
    if (switches.count(a)) {
      if (inline_value) fail("flag ", a, " takes no value");
      values_[a] = "1";
    } else if (with_value.count(a)) {
      if (!inline_value) {
        if (i + 1 >= argc) fail("flag ", a, " needs a value");
        value = argv[++i];
      }
      values_[a] = value;
    } else {
      fail("unknown flag ", a);
    }
  }
}

std::optional<std::string> Args::get(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Args::require(const std::string& flag) const {
  auto v = get(flag);
  if (!v) fail("missing required flag ", flag);
  return *v;
}

int Args::get_int(const std::string& flag, int dflt) const {
  auto v = get(flag);
  return v ? static_cast<int>(parse_flag_int(flag, *v)) : dflt;
}

double Args::get_double(const std::string& flag, double dflt) const {
  auto v = get(flag);
  return v ? parse_flag_double(flag, *v) : dflt;
}

std::vector<int32_t> parse_id_list(const std::string& s, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = s.find(',', pos);
    const std::string item =
        s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0 || v > INT32_MAX)
      fail("flag ", flag, ": '", item, "' is not a token id");
    ids.push_back(static_cast<int32_t>(v));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return ids;
}

}  // namespace fc::cli
