// Minimal "--flag value" / "--flag=value" / "--switch" parsing for the subcommands. Unknown flags
// are errors naming the flag; --help / -h anywhere throws HelpRequested (core/parse.h) with the
// accepted flags.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace fc::cli {

class Args {
 public:
  // `with_value`: flags that take a value; `switches`: flags that do not.
  Args(int argc, char** argv, int first, const std::set<std::string>& with_value,
       const std::set<std::string>& switches);
  std::optional<std::string> get(const std::string& flag) const;
  std::string require(const std::string& flag) const;
  bool has(const std::string& flag) const { return values_.count(flag) != 0; }
  int get_int(const std::string& flag, int dflt) const;
  double get_double(const std::string& flag, double dflt) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

std::vector<int32_t> parse_id_list(const std::string& s, const std::string& flag);

}  // namespace fc::cli
