// Tables and string pieces of the JSON Schema compiler (json_schema.cpp): which keywords are
// annotations or handled, the regular expressions of the supported `format`s, and the JSON
// encodings (raw or escaped) of a set of characters.
#pragma once

#include <string>

#include "grammar/ir.h"
#include "grammar/regex.h"

namespace fc::grammar {

// Keywords that never constrain (title, description, $defs, ...).
bool is_annotation(const std::string& keyword);
// Keywords the compiler enforces.
bool is_handled_keyword(const std::string& keyword);

// The regex (over characters) of a supported string format, or nullptr.
const std::string* format_regex(const std::string& format);

// Any one character of `r` as it may appear inside a JSON string: raw, or escaped for the
// characters JSON lets (or makes) you escape (" \ / \b \f \n \r \t and \u00XX controls).
int32_t json_chars_expr(Grammar& g, const CharRanges& r);

}  // namespace fc::grammar
