#include "grammar/compiler.h"

#include <chrono>

#include "core/error.h"
#include "core/json_limits.h"
#include "grammar/ebnf.h"
#include "grammar/regex.h"

namespace fc::grammar {

const char* kind_name(ConstraintSpec::Kind k) {
  switch (k) {
    case ConstraintSpec::Kind::kJsonSchema:
      return "json";
    case ConstraintSpec::Kind::kJsonObject:
      return "json_object";
    case ConstraintSpec::Kind::kRegex:
      return "regex";
    case ConstraintSpec::Kind::kGrammar:
      return "grammar";
    case ConstraintSpec::Kind::kChoice:
      return "choice";
    case ConstraintSpec::Kind::kToolCalls:
      return "tool_calls";
  }
  return "?";
}

std::string ConstraintSpec::key() const {
  nlohmann::json k = {{"kind", kind_name(kind)},
                      {"text", text},
                      {"ws", json.any_whitespace},
                      {"wsp", json.whitespace_pattern},
                      {"addl", json.additional_properties_default},
                      {"strict", json.strict}};
  if (kind == Kind::kToolCalls) {
    nlohmann::json ts = nlohmann::json::array();
    for (const ToolSpec& t : tools) ts.push_back({t.name, t.parameters});
    k["tools"] = ts;
    k["required"] = tool_options.required;
    k["parallel"] = tool_options.parallel;
  }
  return k.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ConstraintCompiler::ConstraintCompiler(std::shared_ptr<const Vocab> vocab,
                                       std::function<int32_t(const std::string&)> token_by_text,
                                       GemmaToolIds tool_ids, size_t cache_entries)
    : vocab_(std::move(vocab)),
      token_by_text_(std::move(token_by_text)),
      tool_ids_(tool_ids),
      leaf_cache_(std::make_shared<LeafMaskCache>()),
      cache_entries_(cache_entries) {}

Grammar ConstraintCompiler::build(const ConstraintSpec& spec,
                                  std::vector<std::string>* warnings) const {
  using Kind = ConstraintSpec::Kind;
  FC_CHECK(spec.text.size() <= max_text_bytes, kind_name(spec.kind), ": longer than ",
           max_text_bytes, " bytes");
  Grammar g;
  g.set_limits(limits);
  switch (spec.kind) {
    case Kind::kJsonSchema: {
      nlohmann::ordered_json schema;
      try {
        schema = parse_ordered_json(spec.text);  // depth-bounded
      } catch (const std::exception& e) {
        fail("json_schema: not valid JSON: ", e.what());
      }
      g.root = add_json_schema(g, schema, spec.json, warnings);
      break;
    }
    case Kind::kJsonObject:
      g.root = add_json_any_object(g, spec.json);
      break;
    case Kind::kRegex: {
      FC_CHECK(spec.text.find('\0') == std::string::npos,
               "regex: must not contain a NUL character");
      const int32_t r = g.add_rule("root");
      g.define(r, parse_regex(g, spec.text, RegexOptions{}));
      g.root = r;
      break;
    }
    case Kind::kGrammar: {
      GrammarTextOptions o;
      o.token_by_text = token_by_text_;
      o.json = spec.json;
      if (looks_like_ebnf(spec.text)) {
        parse_gbnf(g, spec.text, o);
      } else {
        parse_lark(g, spec.text, o);
      }
      break;
    }
    case Kind::kChoice: {
      nlohmann::json ch;
      try {
        ch = parse_json(spec.text);
      } catch (const std::exception&) {
        fail("choice: not a JSON array");
      }
      FC_CHECK(ch.is_array() && !ch.empty(), "choice: must be a non-empty list of strings");
      std::vector<int32_t> alts;
      for (const auto& c : ch) {
        FC_CHECK(c.is_string(), "choice: must list strings");
        alts.push_back(g.literal(c.get<std::string>()));
      }
      const int32_t r = g.add_rule("root");
      g.define(r, g.alt(alts));
      g.root = r;
      break;
    }
    case Kind::kToolCalls: {
      ToolGrammarOptions o = spec.tool_options;
      o.json = spec.json;
      add_gemma_tool_calls(g, spec.tools, tool_ids_, o, warnings);
      break;
    }
  }
  return g;
}

std::shared_ptr<const CompiledConstraint> ConstraintCompiler::compile(const ConstraintSpec& spec) {
  const std::string key = spec.key();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(key);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto c = std::make_shared<CompiledConstraint>();
  Grammar g = build(spec, &c->warnings);
  c->grammar = std::make_shared<const CompiledGrammar>(compile_grammar(g));
  c->masks = std::make_shared<const GrammarMasks>(c->grammar, vocab_, leaf_cache_);
  if (keep_grammar_text) c->grammar_text = g.to_string();
  c->compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it != index_.end()) return it->second->second;
  lru_.emplace_front(key, c);
  index_[key] = lru_.begin();
  while (lru_.size() > cache_entries_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return c;
}

}  // namespace fc::grammar
