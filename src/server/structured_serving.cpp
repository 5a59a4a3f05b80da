#include "server/structured_serving.h"

#include "core/json_limits.h"
#include "server/api_error.h"
#include "server/serving.h"

namespace fc {

std::shared_ptr<grammar::ConstraintCompiler> make_constraint_compiler(const tok::Tokenizer& tok,
                                                                      int32_t vocab_size) {
  const int32_t n = tok.id_bound();
  std::vector<std::string> bytes(static_cast<size_t>(n));
  std::vector<uint8_t> special(static_cast<size_t>(n), 0);
  for (int32_t id = 0; id < n; ++id) {
    special[static_cast<size_t>(id)] = tok.is_special(id);
    const std::optional<std::string> piece = tok.id_to_token(id);
    if (!piece) continue;
    const std::string& pc = *piece;
    if (pc.size() == 6 && pc.rfind("<0x", 0) == 0 && pc[5] == '>') {
      bytes[static_cast<size_t>(id)] =
          std::string(1, static_cast<char>(std::stoi(pc.substr(3, 2), nullptr, 16)));
      continue;
    }
    bytes[static_cast<size_t>(id)] = tok.decode(std::span<const int32_t>(&id, 1));
  }
  auto vocab = std::make_shared<const grammar::Vocab>(std::move(bytes), std::move(special),
                                                      std::max(vocab_size, n));
  const tok::Gemma4Ids& g = tok.gemma4_ids();
  grammar::GemmaToolIds ids;
  ids.tool_call_open = g.tool_call_open;
  ids.tool_call_close = g.tool_call_close;
  ids.string_delim = g.string_delim;
  ids.channel_open = g.channel_open;
  ids.channel_close = g.channel_close;
  const tok::Tokenizer* tp = &tok;
  return std::make_shared<grammar::ConstraintCompiler>(
      vocab,
      [tp](const std::string& text) -> int32_t {
        tok::EncodeOptions eo;
        eo.parse_special = true;
        const std::vector<int32_t> ids = tp->encode(text, eo);
        return ids.size() == 1 && tp->is_special(ids[0]) ? ids[0] : -1;
      },
      ids);
}

namespace {

// vLLM leaves the thought block unconstrained (§1.6). Here the gate is open only when the
// request can think: the prompt left a thought channel open, or thinking is on for it (chat
// template kwarg enable_thinking, which reasoning_effort sets). Otherwise the grammar starts at
// the first token (§7.4), so a model that opens a channel anyway cannot escape the constraint.
GrammarConstraintOptions reasoning_gate(const ServingContext& ctx, const ChatRequest& req,
                                        bool start_in_reasoning) {
  GrammarConstraintOptions o;
  if (ctx.opts.reasoning_parser != "gemma4" || ctx.structured_config.enable_in_reasoning ||
      !req.include_reasoning)
    return o;
  auto flag = [](const nlohmann::json& kw) -> std::optional<bool> {
    if (kw.is_object() && kw.contains("enable_thinking") && kw["enable_thinking"].is_boolean())
      return kw["enable_thinking"].get<bool>();
    return std::nullopt;
  };
  const bool thinking = flag(req.chat_template_kwargs)
                            .value_or(flag(ctx.opts.default_chat_template_kwargs).value_or(false));
  if (!thinking && !start_in_reasoning) return o;
  const tok::Gemma4Ids& g = ctx.tok.gemma4_ids();
  o.thought_open = g.channel_open;
  o.thought_close = g.channel_close;
  o.start_in_reasoning = start_in_reasoning;
  return o;
}

}  // namespace

ConstraintPlan plan_chat_constraint(ServingContext& ctx, const ChatRequest& req,
                                    bool start_in_reasoning) {
  ConstraintPlan plan;
  const bool tools_on = ctx.opts.enable_auto_tool_choice && !req.tools.is_null();
  const bool named = req.tool_choice == "named";
  if (req.structured.spec) {
    if (named && req.structured.spec->kind != grammar::ConstraintSpec::Kind::kJsonObject)
      throw ApiError::bad_request(
          "You can only either use constraints for structured outputs or tools, not both.",
          "tool_choice");
    plan.param = req.structured.param;
    plan.compiled =
        compile_or_400(*ctx.constraints,
                       resolve_structured_spec(req.structured, ctx.structured_config), plan.param);
  } else if (tools_on && req.tool_choice != "none") {
    const nlohmann::ordered_json tools =
        !req.tools_ordered.is_null() ? req.tools_ordered : parse_ordered_json(req.tools.dump());
    grammar::ConstraintSpec spec;
    spec.kind = grammar::ConstraintSpec::Kind::kToolCalls;
    bool any_strict = false;
    for (const auto& t : tools) {
      if (!t.is_object() || !t.contains("function") || !t["function"].is_object()) continue;
      const auto& f = t["function"];
      const std::string name = f.value("name", "");
      if (named && name != req.tool_choice_name) continue;
      any_strict = any_strict || (f.contains("strict") && f["strict"] == true);
      spec.tools.push_back(
          {name, f.contains("parameters") ? f["parameters"] : nlohmann::ordered_json()});
    }
    const bool constrain = req.tool_choice == "required" || named || any_strict;
    if (constrain && !spec.tools.empty()) {
      spec.tool_options.required = req.tool_choice == "required" || named;
      spec.tool_options.parallel = !named && req.parallel_tool_calls;
      spec.json.any_whitespace = false;
      spec.json.additional_properties_default =
          !ctx.structured_config.disable_additional_properties;
      plan.param = "tools";
      plan.compiled = compile_or_400(*ctx.constraints, spec, plan.param);
    }
  }
  if (plan.compiled) plan.options = reasoning_gate(ctx, req, start_in_reasoning);
  return plan;
}

ConstraintPlan plan_completion_constraint(ServingContext& ctx, const CommonRequest& req) {
  ConstraintPlan plan;
  if (!req.structured.spec) return plan;
  plan.param = req.structured.param;
  plan.compiled = compile_or_400(
      *ctx.constraints, resolve_structured_spec(req.structured, ctx.structured_config), plan.param);
  return plan;
}

void install_constraint(const ConstraintPlan& plan, EngineRequest& er) {
  if (!plan.compiled) return;
  if (er.stop_token_ids.empty())
    throw ApiError::bad_request(
        "a constrained output needs a stop token (ignore_eos without stop_token_ids)", plan.param);
  GrammarConstraintOptions o = plan.options;
  o.stop_ids = er.stop_token_ids;
  er.sampling.make_constraint = [c = plan.compiled, o] {
    return std::unique_ptr<TokenConstraint>(new GrammarConstraint(c, o));
  };
}

}  // namespace fc
