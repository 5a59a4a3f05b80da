// JSON text parsed with its nesting depth bounded *while parsing*: a SAX handler counts every
// '[' and '{' as nlohmann's (iterative) parser meets it and stops the parse at the first level
// past the limit, before any recursive copy, dump() or conversion could see the document.
// nlohmann::basic_json copies, compares and serializes recursively (one C++ frame per level),
// so an unbounded document of ~200 KB ('[' x 100,000) overflows the stack of whoever touches it.
//
// Use these for every JSON text that comes from outside: HTTP bodies, JSON strings inside
// requests (tool-call arguments), files (config.json, tokenizer.json, tokenizer_config.json,
// generation_config.json, quantization and drafter configs), flag values and template kwargs.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.h"

namespace fc {

// Default nesting limit (arrays and objects; "[]" has depth 1, a scalar 0). Real requests and
// configs nest fewer than 20 levels; 256 keeps every recursive consumer downstream (JSON copies
// and dumps, the chat template's value conversion at 512, tojson at 500) far from its own bound
// and from the stack's end.
inline constexpr int kJsonMaxDepth = 256;

// JSON text that is malformed, or nested deeper than allowed. what() says which, with the byte
// offset; for kTooDeep it names the limit ("... nested deeper than 256 levels ...").
class JsonError : public Error {
 public:
  enum class Kind { kSyntax, kTooDeep };
  JsonError(Kind kind, const std::string& what, size_t byte)
      : Error(what), kind_(kind), byte_(byte) {}
  Kind kind() const { return kind_; }
  size_t byte() const { return byte_; }  // offset in the text where parsing stopped

 private:
  Kind kind_;
  size_t byte_;
};

// Parses `text` (strict: one value, nothing but whitespace after it). Throws JsonError.
nlohmann::json parse_json(std::string_view text, int max_depth = kJsonMaxDepth);
// The same, keeping object keys in document order.
nlohmann::ordered_json parse_ordered_json(std::string_view text, int max_depth = kJsonMaxDepth);

// The same for a named source (a file, a flag): what() is "<what>: invalid JSON: ..." or
// "<what>: JSON nested deeper than 256 levels (the limit) at byte N"; still a JsonError.
nlohmann::json parse_json(std::string_view text, const std::string& what,
                          int max_depth = kJsonMaxDepth);
nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& what,
                                          int max_depth = kJsonMaxDepth);

// Reads and parses a whole file, named by its path in errors; fc::Error "<path>: cannot open"
// when it cannot be read.
nlohmann::json read_json_file(const std::string& path, int max_depth = kJsonMaxDepth);
nlohmann::ordered_json read_ordered_json_file(const std::string& path,
                                              int max_depth = kJsonMaxDepth);

// Nesting depth of a value already in memory (same counting as the parser), computed without
// recursion; for values built by code rather than parsed.
int json_depth(const nlohmann::json& j);
int json_depth(const nlohmann::ordered_json& j);

}  // namespace fc
