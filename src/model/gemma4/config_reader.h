// Typed reads of config.json objects for the Gemma 4 config parsers (text, vision, audio): the
// core reader (core/json_reader.h) under the name these parsers use.
#pragma once

#include <nlohmann/json.hpp>

#include "core/json_reader.h"

namespace fc::gemma4::detail {

using nlohmann::json;
using Reader = fc::JsonReader;

}  // namespace fc::gemma4::detail
