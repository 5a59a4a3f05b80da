// JSON Schema (draft 2020-12, with the older forms clients still send) -> grammar IR.
//
// The output is one JSON value (or, with Syntax::kGemma, the same value in Gemma 4's tool-call
// argument syntax: bare keys, strings between <|"|> special tokens, no whitespace). Object
// properties come in a fixed order: `properties` in schema order, then `required` names not
// listed there, then additional properties (llguidance's order). Whitespace between tokens is
// bounded by default (one gap is one space, or a line break and at most 16 spaces or tabs),
// never before or after the value; numbers have at most 19 integer, 19 fraction and 3
// exponent digits. Keywords that cannot be enforced are errors naming the keyword under
// `strict`, otherwise warnings (ignored), as vLLM's guidance/xgrammar backends do.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "grammar/ir.h"
#include "grammar/regex.h"

namespace fc::grammar {

struct JsonSchemaOptions {
  enum class Syntax { kJson, kGemma };
  Syntax syntax = Syntax::kJson;
  int32_t gemma_string_token = -1;            // <|"|> (Syntax::kGemma)
  bool any_whitespace = true;                 // false: compact JSON (vLLM disable_any_whitespace)
  std::string whitespace_pattern;             // a regex for every gap (replaces the default bound)
  bool additional_properties_default = true;  // false: vLLM disable_additional_properties
  bool strict = false;                        // unsupported keywords are errors
  int max_schema_depth = 128;
};

// Adds the rules for `schema` (the whole document; $ref resolves against it) to g and returns
// the rule whose language is the schema's values. Throws fc::Error ("json_schema: ...") for an
// invalid or unsupported schema; warnings get the ignored keywords.
int32_t add_json_schema(Grammar& g, const nlohmann::ordered_json& schema,
                        const JsonSchemaOptions& o, std::vector<std::string>* warnings);

// Any JSON value (json_object uses an object of it), in the given syntax.
int32_t add_json_any_object(Grammar& g, const JsonSchemaOptions& o);

// The JSON text of a string value whose characters are in `ranges` (escapes for ", \ and
// control characters), for patterns and formats.
CharEmitter json_string_chars();

}  // namespace fc::grammar
