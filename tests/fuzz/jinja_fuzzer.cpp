// Fuzzes the sandboxed Jinja engine (src/chat): template source x render context. Input: the
// template, a NUL byte, then the context as JSON (an object; anything else renders with a small
// fixed chat context). Only chat::TemplateError may escape parse() and render(); the limits are
// lowered so that one input cannot run for seconds (the engine must enforce them).
#include <string>

#include "chat/chat_template.h"
#include "core/error.h"
#include "core/json_limits.h"
#include "tests/fuzz/fuzz_util.h"

using nlohmann::ordered_json;

namespace {

const ordered_json& default_context() {
  static const ordered_json c = ordered_json::parse(R"({
    "messages": [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                 {"role": "assistant", "content": "Hello", "tool_calls": [
                   {"type": "function", "function": {"name": "f", "arguments": {"a": [1, 2.5, null]}}}]},
                 {"role": "tool", "content": "ok", "name": "f"}],
    "tools": [{"type": "function", "function": {"name": "f", "description": "d",
               "parameters": {"type": "object", "properties": {"a": {"type": "array"}}}}}],
    "add_generation_prompt": true, "enable_thinking": true,
    "bos_token": "<bos>", "eos_token": "<eos>"})");
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const auto [source, ctx_text] = fc::fuzz::split_once(all, std::string_view("\0", 1));
  fc::chat::TemplateLimits limits;
  limits.max_call_depth = 32;
  limits.max_loop_iterations = 20'000;
  limits.max_output_bytes = 1u << 20;
  limits.max_nesting = 64;
  ordered_json ctx = default_context();
  if (!ctx_text.empty()) {
    try {
      ordered_json parsed = fc::parse_ordered_json(ctx_text, "context", 64);
      if (parsed.is_object()) ctx = std::move(parsed);
    } catch (const fc::Error&) {
    }
  }
  try {
    const fc::chat::Template t = fc::chat::Template::parse(source, limits);
    const std::string out = t.render(ctx);
    FUZZ_CHECK(out.size() <= limits.max_output_bytes, "output over max_output_bytes");
  } catch (const fc::chat::TemplateError&) {
  }
  return 0;
}
