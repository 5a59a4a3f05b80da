// Usage texts of the `fourcast` commands. `fourcast --help` and `fourcast CMD --help` print them
// on stdout (exit 0); a wrong command line prints the overview on stderr (exit 2).
#pragma once

#include <string>

#include "core/parse.h"

namespace fc::cli {

// Every command with a one-line synopsis.
std::string overview_usage();

// The usage of `command` (its synopsis and what it does) followed by every flag it accepts, as
// its parser reported them.
std::string command_usage(const std::string& command, const HelpRequested& flags);

}  // namespace fc::cli
