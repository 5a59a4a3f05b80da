// Strict number parsing for command-line flags: the whole string must be one number, else an
// fc::Error naming the flag and the value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fc {

int64_t parse_flag_int(const std::string& flag, const std::string& value);
double parse_flag_double(const std::string& flag, const std::string& value);

// Thrown by a command's flag parser when it sees --help or -h: the flags it accepts, for the
// usage text (apps/cli prints it on stdout and exits 0). Not an fc::Error: nothing failed.
struct HelpRequested {
  std::vector<std::string> valued;    // flags that take a value
  std::vector<std::string> switches;  // flags without a value
};

}  // namespace fc
