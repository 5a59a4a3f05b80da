// JSON parsing with a bound on nesting depth, for every JSON file fourcast reads (config.json,
// tokenizer.json, tokenizer_config.json, generation_config.json, quantization configs, drafter
// configs, template kwargs). nlohmann's parser itself is iterative, but copying, dump() and our
// own readers recurse once per level, so a file nested 10^5 deep would overflow the stack later;
// the depth is checked while parsing, before any value exists.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace fc {

// Deepest nesting (objects and arrays) accepted in a file. Real configs and tokenizers nest
// fewer than 10 levels; 256 leaves room for any hand-written file.
constexpr int kMaxJsonFileDepth = 256;

// Parses `text`; `what` names the source in errors (e.g. "model/config.json"). Throws fc::Error
// "<what>: invalid JSON: ..." for malformed text and "<what>: JSON nesting deeper than <max>
// levels" as soon as the parser enters level max_depth + 1.
nlohmann::json parse_json_bounded(std::string_view text, const std::string& what,
                                  int max_depth = kMaxJsonFileDepth);
nlohmann::ordered_json parse_ordered_json_bounded(std::string_view text, const std::string& what,
                                                  int max_depth = kMaxJsonFileDepth);

// Reads and parses a whole file; "<path>: cannot open" when it cannot be read.
nlohmann::json read_json_file_bounded(const std::string& path, int max_depth = kMaxJsonFileDepth);
nlohmann::ordered_json read_ordered_json_file_bounded(const std::string& path,
                                                      int max_depth = kMaxJsonFileDepth);

}  // namespace fc
