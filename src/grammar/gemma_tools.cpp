#include "grammar/gemma_tools.h"

#include "core/error.h"

namespace fc::grammar {

void add_gemma_tool_calls(Grammar& g, const std::vector<ToolSpec>& tools, const GemmaToolIds& ids,
                          const ToolGrammarOptions& o, std::vector<std::string>* warnings) {
  FC_CHECK(!tools.empty(), "tool calls: no tools");
  FC_CHECK(ids.tool_call_open >= 0 && ids.tool_call_close >= 0 && ids.string_delim >= 0,
           "tool calls: the tokenizer lacks <|tool_call>, <tool_call|> or <|\"|>");
  JsonSchemaOptions jo = o.json;
  jo.syntax = JsonSchemaOptions::Syntax::kGemma;
  jo.gemma_string_token = ids.string_delim;
  std::vector<int32_t> calls;
  for (const ToolSpec& t : tools) {
    FC_CHECK(!t.name.empty(), "tool calls: a tool has no name");
    nlohmann::ordered_json params = t.parameters;
    if (params.is_null())
      params = {{"type", "object"}, {"properties", nlohmann::ordered_json::object()}};
    int32_t args;
    try {
      args = add_json_schema(g, params, jo, warnings);
    } catch (const Error& e) {
      fail("tool '", t.name, "': ", e.what());
    }
    calls.push_back(g.seq({g.literal("call:" + t.name), g.ref(args)}));
  }
  const int32_t call = g.add_rule(g.fresh_name("tool-call"));
  g.define(call,
           g.seq({g.special(ids.tool_call_open), g.alt(calls), g.special(ids.tool_call_close)}));
  const int32_t root = g.add_rule(g.fresh_name("tool-calls"));
  if (o.required) {
    g.define(root, o.parallel ? g.plus(g.ref(call)) : g.ref(call));
  } else {
    // Free text (any text token, and thought-channel markers), then the calls.
    const int32_t text = g.add_rule(g.fresh_name("free-text"));
    std::vector<int32_t> t = {g.byte_range(0, 255)};
    if (ids.channel_open >= 0) t.push_back(g.special(ids.channel_open));
    if (ids.channel_close >= 0) t.push_back(g.special(ids.channel_close));
    g.define(text, g.star(g.alt(t)));
    g.define(root, g.seq({g.ref(text), o.parallel ? g.star(g.ref(call)) : g.opt(g.ref(call))}));
  }
  g.root = root;
}

}  // namespace fc::grammar
