// Fuzzes the Gemma 4 reasoning / tool-call output parser (src/chat/gemma4/output_parser.h):
// parse_output on arbitrary text with every option combination, and the streaming invariant the
// header promises: for valid UTF-8 split at character boundaries, the concatenated StreamParser
// deltas equal parse_output. The parser throws nothing on any input. Input: a flags byte (bit 0
// reasoning, 1 tools, 2 start in reasoning), a 4-byte little-endian split seed, then the text.
#include <map>
#include <string>

#include "chat/gemma4/output_parser.h"
#include "tests/fuzz/fuzz_util.h"

using namespace fc::chat::gemma4;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fc::fuzz::Input in(data, size);
  const uint8_t flags = in.take<uint8_t>();
  const uint32_t split_seed = in.take<uint32_t>();
  const std::string text = in.rest();
  ParseOptions opt;
  opt.reasoning = flags & 1;
  opt.tools = flags & 2;
  opt.start_in_reasoning = flags & 4;
  int next_id = 0;
  opt.make_tool_call_id = [&] { return "call-" + std::to_string(next_id++); };

  const ParsedOutput whole = parse_output(text, opt);
  (void)message_to_json(whole).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  (void)prompt_ends_in_open_reasoning(text);

  if (!fc::fuzz::valid_utf8(text)) return 0;
  next_id = 0;
  StreamParser sp(opt);
  std::string reasoning, content;
  std::map<int, std::string> args, names;
  auto take = [&](const Delta& d) {
    reasoning += d.reasoning;
    content += d.content;
    for (const ToolCallDelta& t : d.tool_calls) {
      if (t.name) names[t.index] = *t.name;
      args[t.index] += t.arguments;
    }
    (void)delta_to_json(d);
  };
  uint32_t x = split_seed | 1;
  size_t pos = 0;
  while (pos < text.size()) {
    x = x * 1664525u + 1013904223u;  // split lengths 1..16 bytes, then the next boundary
    const size_t end = fc::fuzz::utf8_boundary(text, pos + 1 + (x >> 28));
    take(sp.feed(std::string_view(text).substr(pos, end - pos)));
    pos = end;
  }
  take(sp.finish());
  FUZZ_CHECK(reasoning == whole.reasoning.value_or(""), "streamed reasoning differs");
  FUZZ_CHECK(content == whole.content.value_or(""), "streamed content differs");
  FUZZ_CHECK(names.size() == whole.tool_calls.size(), "streamed tool-call count differs");
  for (size_t i = 0; i < whole.tool_calls.size(); ++i) {
    FUZZ_CHECK(names[static_cast<int>(i)] == whole.tool_calls[i].name, "tool name differs");
    FUZZ_CHECK(args[static_cast<int>(i)] == whole.tool_calls[i].arguments, "arguments differ");
  }
  FUZZ_CHECK(sp.tools_called() == !whole.tool_calls.empty(), "tools_called differs");
  return 0;
}
