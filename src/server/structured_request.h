// Structured outputs at the API edge: which constraint a request asks for, with vLLM's field
// names, aliases and 400 messages (spec structured-output §1), and the server-wide
// --structured-outputs-config. Kept apart from openai_request/serving so that those files only
// call in here.
//
// Sources of a constraint (exactly one kind per request):
//  - OpenAI response_format: {"type":"json_schema","json_schema":{name, schema, strict}},
//    {"type":"json_object"}, {"type":"structural_tag", ...} (refused for now), {"type":"text"};
//  - vLLM structured_outputs {json | regex | choice (alias choices) | grammar | json_object |
//    structural_tag} plus disable_any_whitespace / disable_additional_properties /
//    whitespace_pattern, at the top level or inside "extra_body";
//  - the legacy guided_json / guided_regex / guided_choice / guided_grammar / guided_json_object
//    / guided_whitespace_pattern fields, mapped onto the same.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "grammar/compiler.h"

namespace fc {

struct StructuredOutputsConfig {
  std::string backend = "auto";  // accepted names; there is one built-in engine
  bool disable_fallback = false;
  bool disable_any_whitespace = false;
  bool disable_additional_properties = false;
  bool enable_in_reasoning = false;  // constrain the thought block too
  std::string reasoning_parser;
};

// --structured-outputs-config as JSON (an object, or null for the defaults). Throws fc::Error
// naming the bad key.
StructuredOutputsConfig parse_structured_outputs_config(const nlohmann::json& j);

struct StructuredRequest {
  std::optional<grammar::ConstraintSpec> spec;  // none: unconstrained
  std::string param;                            // the field it came from (error param)
  // Request-level whitespace/additional-properties options, applied over the server's.
  std::optional<bool> disable_any_whitespace, disable_additional_properties;
  std::string whitespace_pattern;
};

// From a request body (order-preserving: JSON Schema property order is the output order).
// Throws ApiError(400) with vLLM's messages.
StructuredRequest parse_structured_request(const nlohmann::ordered_json& body);

// The Responses API's `text.format` ({"type":"json_schema","name","schema","strict"} |
// {"type":"json_object"} | {"type":"text"}), as the same request. Throws ApiError(400).
StructuredRequest structured_from_text_format(const nlohmann::ordered_json& format);

// The spec with the server's options folded in (whitespace, additional properties).
grammar::ConstraintSpec resolve_structured_spec(const StructuredRequest& r,
                                                const StructuredOutputsConfig& cfg);

// Compiles the spec; bad or unsupported constraints become ApiError(400) with vLLM's wording
// ("Failed to transform json schema into a grammar: ...", "Invalid grammar specification: ...").
std::shared_ptr<const grammar::CompiledConstraint> compile_or_400(
    grammar::ConstraintCompiler& cc, const grammar::ConstraintSpec& spec, const std::string& param);

}  // namespace fc
