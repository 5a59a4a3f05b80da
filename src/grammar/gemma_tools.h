// Gemma 4's own tool-call syntax as a grammar (chat-tokenizer-api.md §4.2):
//   <|tool_call>call:NAME{key:value,...}<tool_call|>
// with bare keys, strings between <|"|> tokens, and each tool's arguments constrained by its
// `parameters` JSON Schema (JsonSchemaOptions::Syntax::kGemma). After the last call the model
// emits <|tool_response>, one of the stop tokens.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "grammar/ir.h"
#include "grammar/json_schema.h"

namespace fc::grammar {

struct ToolSpec {
  std::string name;
  nlohmann::ordered_json parameters;  // null: no parameters ({} object)
};

struct GemmaToolIds {
  int32_t tool_call_open = -1, tool_call_close = -1, string_delim = -1;
  int32_t channel_open = -1, channel_close = -1;  // free text may hold a thought block (auto)
};

struct ToolGrammarOptions {
  // required / named: the output is one or more calls (one when !parallel); otherwise (auto
  // with strict tools) free text, then any number of calls.
  bool required = true;
  bool parallel = true;
  JsonSchemaOptions json;  // strict, additional properties
};

// Sets g.root. Throws fc::Error naming the tool whose parameters cannot be compiled.
void add_gemma_tool_calls(Grammar& g, const std::vector<ToolSpec>& tools, const GemmaToolIds& ids,
                          const ToolGrammarOptions& o, std::vector<std::string>* warnings);

}  // namespace fc::grammar
