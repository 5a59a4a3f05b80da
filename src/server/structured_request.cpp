#include "server/structured_request.h"

#include <vector>

#include "core/json_limits.h"
#include "core/log.h"
#include "server/api_error.h"

namespace fc {

using ojson = nlohmann::ordered_json;
using Kind = grammar::ConstraintSpec::Kind;

StructuredOutputsConfig parse_structured_outputs_config(const nlohmann::json& j) {
  StructuredOutputsConfig c;
  if (j.is_null()) return c;
  FC_CHECK(j.is_object(), "--structured-outputs-config: must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const nlohmann::json& v = it.value();
    auto flag = [&](bool& out) {
      if (v.is_boolean()) {
        out = v.get<bool>();
      } else if (v.is_string() && (v == "true" || v == "false")) {
        out = v == "true";
      } else {
        fail("--structured-outputs-config: ", k, " must be true or false");
      }
    };
    if (k == "backend") {
      FC_CHECK(v.is_string(), "--structured-outputs-config: backend must be a string");
      const std::string b = v.get<std::string>();
      FC_CHECK(b == "auto" || b == "xgrammar" || b == "guidance" || b == "outlines" ||
                   b == "lm-format-enforcer",
               "--structured-outputs-config: unknown backend '", b, "'");
      c.backend = b;
    } else if (k == "disable_fallback") {
      flag(c.disable_fallback);
    } else if (k == "disable_any_whitespace") {
      flag(c.disable_any_whitespace);
    } else if (k == "disable_additional_properties") {
      flag(c.disable_additional_properties);
    } else if (k == "enable_in_reasoning") {
      flag(c.enable_in_reasoning);
    } else if (k == "reasoning_parser" || k == "reasoning_parser_plugin") {
      if (v.is_string()) c.reasoning_parser = v.get<std::string>();
    } else {
      fail("--structured-outputs-config: unknown key '", k, "'");
    }
  }
  // vLLM: these options exist only for the xgrammar/guidance backends.
  if ((c.disable_any_whitespace || c.disable_additional_properties) &&
      (c.backend == "outlines" || c.backend == "lm-format-enforcer"))
    fail(
        "--structured-outputs-config: disable_any_whitespace / disable_additional_properties "
        "are only supported for the xgrammar and guidance backends");
  return c;
}

namespace {

[[noreturn]] void bad(const std::string& msg, const std::string& param) {
  throw ApiError::bad_request(msg, param);
}

std::string schema_text(const ojson& v, const std::string& param) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s.empty()) bad(param + " cannot be an empty string", param);
    try {
      (void)parse_ordered_json(s);  // depth-bounded
    } catch (const std::exception&) {
      bad("Invalid JSON grammar specification.", param);
    }
    return s;
  }
  if (v.is_object() || v.is_boolean()) return v.dump();
  bad(param + " must be a JSON schema (an object or a string)", param);
}

// Reads vLLM's structured_outputs object (or the same fields spelled guided_*).
void read_outputs(const ojson& so, const std::string& where, StructuredRequest& r,
                  std::vector<std::string>& kinds) {
  auto set = [&](Kind k, std::string text, const std::string& name) {
    kinds.push_back(name);
    grammar::ConstraintSpec s;
    s.kind = k;
    s.text = std::move(text);
    r.spec = s;
    r.param = where;
  };
  for (auto it = so.begin(); it != so.end(); ++it) {
    const std::string& k = it.key();
    const ojson& v = it.value();
    const std::string p = where + "." + k;
    if (k == "json") {
      if (v.is_null()) continue;
      set(Kind::kJsonSchema, schema_text(v, "structured_outputs.json"), "json");
    } else if (k == "regex") {
      if (v.is_null()) continue;
      if (!v.is_string()) bad(p + " must be a string", where);
      const std::string re = v.get<std::string>();
      if (re.find('\0') != std::string::npos)
        bad("structured_outputs.regex must not contain a NUL character ('\\x00')", where);
      set(Kind::kRegex, re, "regex");
    } else if (k == "choice" || k == "choices") {
      if (v.is_null()) continue;
      if (!v.is_array()) bad(p + " must be a list of strings", where);
      if (v.empty()) bad("Choice '[]' cannot be an empty list", where);
      for (const ojson& c : v)
        if (!c.is_string()) bad(p + " must be a list of strings", where);
      set(Kind::kChoice, v.dump(), "choice");
    } else if (k == "grammar") {
      if (v.is_null()) continue;
      if (!v.is_string()) bad(p + " must be a string", where);
      if (v.get<std::string>().empty())
        bad("structured_outputs.grammar cannot be an empty string", where);
      set(Kind::kGrammar, v.get<std::string>(), "grammar");
    } else if (k == "json_object") {
      if (v.is_null()) continue;
      if (!(v.is_boolean() && v.get<bool>()))
        bad("structured_outputs.json_object must be True if set; omit structured_outputs to "
            "disable structured outputs",
            where);
      set(Kind::kJsonObject, "", "json_object");
    } else if (k == "structural_tag") {
      if (v.is_null()) continue;
      bad("structured_outputs.structural_tag is not supported yet", where);
    } else if (k == "disable_any_whitespace") {
      if (v.is_boolean()) r.disable_any_whitespace = v.get<bool>();
    } else if (k == "disable_additional_properties") {
      if (v.is_boolean()) r.disable_additional_properties = v.get<bool>();
    } else if (k == "whitespace_pattern") {
      if (v.is_string()) r.whitespace_pattern = v.get<std::string>();
    } else if (k == "backend" || k == "_backend") {
      if (!v.is_null())
        bad("Request-level structured output backend selection is not supported. The request "
            "will use the backend set with --structured-outputs-config.",
            where);
    } else if (k == "disable_fallback" || k == "_backend_was_auto") {
      // accepted, no effect
    } else {
      bad("unknown field " + p, where);
    }
  }
}

void read_response_format(const ojson& rf, StructuredRequest& r, std::vector<std::string>& kinds) {
  if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
    bad("response_format must be an object with a string \"type\"", "response_format");
  const std::string t = rf["type"].get<std::string>();
  grammar::ConstraintSpec s;
  if (t == "text") return;
  if (t == "json_object") {
    s.kind = Kind::kJsonObject;
  } else if (t == "json_schema") {
    if (!rf.contains("json_schema") || rf["json_schema"].is_null())
      bad("When response_format type is 'json_schema', the 'json_schema' field must be provided.",
          "response_format");
    const ojson& js = rf["json_schema"];
    if (!js.is_object()) bad("response_format.json_schema must be an object", "response_format");
    if (js.contains("name")) {
      if (!js["name"].is_string())
        bad("response_format.json_schema.name must be a string", "response_format");
      const std::string n = js["name"].get<std::string>();
      if (n.size() > 64)
        bad("response_format.json_schema.name is longer than 64 characters", "response_format");
    }
    const ojson* sch = js.contains("schema")        ? &js["schema"]
                       : js.contains("json_schema") ? &js["json_schema"]
                                                    : nullptr;
    if (!sch || sch->is_null())
      bad("You must use one kind of structured outputs constraint but none are specified: "
          "response_format.json_schema has no schema",
          "response_format");
    s.kind = Kind::kJsonSchema;
    s.text = schema_text(*sch, "response_format.json_schema.schema");
    s.json.strict = js.value("strict", false) == true;
  } else if (t == "structural_tag") {
    bad("response_format type 'structural_tag' is not supported yet", "response_format");
  } else {
    bad("response_format type must be one of 'text', 'json_object', 'json_schema', "
        "'structural_tag', got '" +
            t + "'",
        "response_format");
  }
  kinds.push_back("response_format");
  r.spec = s;
  r.param = "response_format";
}

void check_one(const std::vector<std::string>& kinds) {
  if (kinds.size() <= 1) return;
  std::string list;
  for (const std::string& k : kinds) list += (list.empty() ? "" : ", ") + k;
  bad("You can only use one kind of structured outputs constraint but multiple are specified: " +
          list,
      "structured_outputs");
}

}  // namespace

StructuredRequest parse_structured_request(const ojson& body) {
  StructuredRequest r;
  std::vector<std::string> kinds;
  const ojson* so = nullptr;
  if (body.contains("structured_outputs")) so = &body["structured_outputs"];
  if (!so && body.contains("extra_body") && body["extra_body"].is_object() &&
      body["extra_body"].contains("structured_outputs"))
    so = &body["extra_body"]["structured_outputs"];
  if (so && !so->is_null()) {
    if (!so->is_object()) bad("structured_outputs must be an object", "structured_outputs");
    read_outputs(*so, "structured_outputs", r, kinds);
    if (kinds.empty() && (so->contains("json") || so->contains("regex") || so->contains("choice") ||
                          so->contains("grammar") || so->contains("json_object") ||
                          so->contains("structural_tag") || so->empty()))
      bad("You must use one kind of structured outputs constraint but none are specified: " +
              so->dump(),
          "structured_outputs");
  }
  // Legacy guided_* (removed from vLLM in 0.12, still sent by older clients).
  ojson legacy = ojson::object();
  for (const char* k : {"guided_json", "guided_regex", "guided_choice", "guided_grammar",
                        "guided_json_object", "guided_whitespace_pattern"}) {
    if (body.contains(k) && !body[k].is_null()) {
      std::string name = std::string(k).substr(7);
      if (name == "whitespace_pattern") {
        legacy["whitespace_pattern"] = body[k];
      } else {
        legacy[name] = body[k];
      }
    }
  }
  if (!legacy.empty()) read_outputs(legacy, "guided", r, kinds);
  if (body.contains("response_format") && !body["response_format"].is_null())
    read_response_format(body["response_format"], r, kinds);
  check_one(kinds);
  return r;
}

StructuredRequest structured_from_text_format(const ojson& format) {
  StructuredRequest r;
  std::vector<std::string> kinds;
  if (!format.is_object() || !format.contains("type"))
    bad("text.format must be an object with a \"type\"", "text.format");
  // Responses API: the schema fields sit on the format object itself.
  if (format["type"] == "json_schema") {
    ojson rf = {{"type", "json_schema"}, {"json_schema", format}};
    read_response_format(rf, r, kinds);
  } else {
    read_response_format(format, r, kinds);
  }
  if (r.spec) r.param = "text.format";
  return r;
}

grammar::ConstraintSpec resolve_structured_spec(const StructuredRequest& r,
                                                const StructuredOutputsConfig& cfg) {
  grammar::ConstraintSpec s = *r.spec;
  s.json.any_whitespace = !r.disable_any_whitespace.value_or(cfg.disable_any_whitespace);
  s.json.additional_properties_default =
      !r.disable_additional_properties.value_or(cfg.disable_additional_properties);
  s.json.whitespace_pattern = r.whitespace_pattern;
  return s;
}

std::shared_ptr<const grammar::CompiledConstraint> compile_or_400(
    grammar::ConstraintCompiler& cc, const grammar::ConstraintSpec& spec,
    const std::string& param) {
  try {
    auto c = cc.compile(spec);
    for (const std::string& w : c->warnings) log_line(LogLevel::kWarn, w);
    return c;
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    switch (spec.kind) {
      case Kind::kJsonSchema:
      case Kind::kJsonObject:
        throw ApiError::bad_request(
            std::string("Failed to transform json schema into a grammar: ") + e.what(), param);
      case Kind::kRegex:
        throw ApiError::bad_request(
            std::string("Failed to transform regex into a grammar: ") + e.what(), param);
      case Kind::kChoice:
        throw ApiError::bad_request(
            std::string("Failed to transform choices into a grammar: ") + e.what(), param);
      case Kind::kGrammar:
        throw ApiError::bad_request(std::string("Invalid grammar specification: ") + e.what(),
                                    param);
      case Kind::kToolCalls:
        throw ApiError::bad_request(
            std::string("Invalid tool definition for constrained tool calls: ") + e.what(), param);
    }
    throw;
  }
}

}  // namespace fc
