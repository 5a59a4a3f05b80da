// Grammar text dialects: GBNF (llama.cpp) / xgrammar EBNF, and the Lark subset llguidance takes
// (vLLM forwards `structured_outputs.grammar` as either: EBNF when a non-comment line has
// "::=", else Lark [vllm: vllm/v1/structured_output/utils.py grammar_is_likely_lark]).
//
// GBNF/EBNF: `name ::= alternatives`, entry `root`; "strings" and 'strings' with escapes,
// [classes] over code points ([^] any), `.` any character, ( ), * + ? {m} {m,} {m,n} {,n},
// # comments, rule references, special tokens <[id]> and <text> (the text must be one special
// token). Lark: `rule: ...` and `TERMINAL: ...`, entry `start`, "literals", /regex/, [optional],
// item ~ n and ~ n..m, %import common.X for the usual terminals, <|special|> and <[id]> tokens,
// %json {schema}. Refused with an error: %ignore, case-insensitive literals, templates, rule
// options such as [max_tokens=...], negated tokens (!<...>).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "grammar/ir.h"
#include "grammar/json_schema.h"

namespace fc::grammar {

struct GrammarTextOptions {
  // The id of the special token whose text is `text` (e.g. "<|tool_call>"), or -1.
  std::function<int32_t(const std::string& text)> token_by_text;
  JsonSchemaOptions json;  // for Lark %json
};

bool looks_like_ebnf(std::string_view text);
void parse_gbnf(Grammar& g, std::string_view text, const GrammarTextOptions& o);
void parse_lark(Grammar& g, std::string_view text, const GrammarTextOptions& o);

}  // namespace fc::grammar
