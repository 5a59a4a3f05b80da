// Gemma 4 output parsing: splits generated text into reasoning, content and OpenAI tool calls,
// both for a finished output (parse_output) and incrementally while it streams (StreamParser).
//
// Input is the generated text detokenized WITH special-token strings kept, e.g.
//   <|channel>thought\nLet me look it
//   up.<channel|><|tool_call>call:get_weather{city:<|"|>Paris<|"|>} <tool_call|><|tool_response>
// giving reasoning "Let me look it up.", no content, and one call get_weather with arguments
// {"city": "Paris"} (JSON text in Python json.dumps style, as vLLM sends it).
//
// Behaviour follows vLLM's Gemma 4 parsers (spec chat-tokenizer-api.md §3, §4):
// [vllm-project/vllm: vllm/reasoning/gemma4_reasoning_parser.py] (legacy reasoning parser),
// [vllm-project/vllm: vllm/tool_parsers/gemma4_tool_parser.py] (legacy tool parser, whose value
// conversion we use) and [vllm-project/vllm: vllm/parser/gemma4.py] with
// [vllm-project/vllm: vllm/parser/engine/parser_engine.py] (the newer single state machine, whose
// transitions we use). Rules, in order of the output:
//  - Reasoning (options.reasoning): `<|channel>` opens the thought channel, `<channel|>` closes
//    it. The `thought\n` label at the start of each channel is dropped (a bare `thought` channel
//    is empty). An output that starts with `thought\n` and no `<|channel>` is read as an open
//    channel (vLLM engine's first-chunk repair). A stray `<channel|>` in content and a repeated
//    `<|channel>` inside reasoning are swallowed. An unterminated channel (max_tokens) is all
//    reasoning. Trailing whitespace of the whole reasoning is dropped.
//  - Tool calls (options.tools): `<|tool_call>call:NAME{ARGS}<tool_call|>` (also `<|tool_call>
//    :NAME{` without `call`), NAME matching [A-Za-z0-9_.-] or non-ASCII bytes. A call counts as
//    made once `call:NAME{` is complete; it ends at `<tool_call|>`, at another `<|tool_call>`, at
//    a stop marker or at the end of output (max_tokens), arguments being closed as they stand.
//    `<|tool_call>` also ends reasoning. A `<|tool_call>` not followed by a valid header is
//    malformed: its raw text, markers included, up to and including `<tool_call|>` is content.
//    Text between a call's closing `}` and `<tool_call|>` is ignored. Unknown tool names are
//    accepted (vLLM's engine has validate_tool_names off for Gemma 4).
//  - Content is everything else. With at least one tool call, content is stripped of trailing
//    whitespace, and of leading whitespace when the first call came before any non-blank content.
//  - The stop markers `<eos>`, `<turn|>` and `<|tool_response>` never appear in the output.
//  - With a parser off, its markers are ordinary text (vLLM then also keeps special tokens in
//    the text, because the other parser forces skip_special_tokens=False).
// An empty reasoning or content is reported as absent (nullopt), as vLLM reports None.
//
// Streaming invariant: for any split of a text into deltas (deltas must end on UTF-8 character
// boundaries), the concatenated reasoning, content and per-call argument fragments equal
// parse_output(text). Text is held back only while it may still turn out to be a marker, the
// `thought\n` label, a call header, an unfinished key or bare value, or trailing whitespace.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace fc::chat::gemma4 {

struct ParseOptions {
  // --reasoning-parser gemma4: split the thought channel out of the content.
  bool reasoning = true;
  // --enable-auto-tool-choice --tool-call-parser gemma4, with tools in the request and
  // tool_choice not "none": extract tool calls.
  bool tools = true;
  // The rendered prompt ends inside an open thought channel (see prompt_ends_in_open_reasoning),
  // e.g. the 2026-07-09 template's `<|channel>thought\n` after a tool response: output starts in
  // reasoning. Ignored when reasoning is off.
  bool start_in_reasoning = false;
  // Makes tool-call ids; empty means "chatcmpl-tool-" + 32 random hex digits, as vLLM's
  // make_tool_call_id.
  std::function<std::string()> make_tool_call_id;
};

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON object text, e.g. {"city": "Paris", "days": 3}
};

struct ParsedOutput {
  std::optional<std::string> reasoning;
  std::optional<std::string> content;
  std::vector<ToolCall> tool_calls;
};

// One entry of an OpenAI `delta.tool_calls` list. The first entry of a call carries id and name
// (and implies "type": "function"); later ones only argument fragments. Indices start at 0 and
// grow by one per call.
struct ToolCallDelta {
  int index = 0;
  std::optional<std::string> id;
  std::optional<std::string> name;
  std::string arguments;  // fragment to append; may be empty in the first entry
};

// What one feed() or finish() produced. Fields are empty when nothing new is known.
struct Delta {
  std::string reasoning;
  std::string content;
  std::vector<ToolCallDelta> tool_calls;  // at most one entry per index, in index order
  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
};

class StreamParser {
 public:
  explicit StreamParser(ParseOptions options = {});
  ~StreamParser();
  StreamParser(StreamParser&&) noexcept;
  StreamParser& operator=(StreamParser&&) noexcept;

  // Feeds the text of one decode step (one or several tokens).
  Delta feed(std::string_view text);
  // End of generation: flushes everything held back. No feed() afterwards.
  Delta finish();
  // Whether at least one tool call was started (for finish_reason "tool_calls").
  bool tools_called() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parses a finished output (same result as one StreamParser fed the whole text).
ParsedOutput parse_output(std::string_view text, const ParseOptions& options);

// The special-token texts a parser with these options reads: the channel markers (reasoning),
// the call markers and the string delimiter (tools), and the stop markers. A server decoding
// with skip_special_tokens keeps exactly these and drops every other special token, so no other
// `<|…|>` marker reaches content (spec chat-tokenizer-api.md §3.3, C++ server rule).
std::vector<std::string_view> consumed_markers(const ParseOptions& options);

// Whether a rendered prompt ends inside an open thought channel: its last `<|channel>` comes
// after every `<channel|>`, `<|tool_call>`, `<|turn>` and `<|tool_response>` (vLLM
// Gemma4Parser._prompt_ends_in_open_reasoning, done on text instead of token ids).
bool prompt_ends_in_open_reasoning(std::string_view prompt);

// OpenAI chat.completion.chunk `delta` fields for a Delta: "reasoning" and "reasoning_content"
// (both, spec §6.3), "content", "tool_calls" — only the non-empty ones. A tool call's first
// entry gets "id", "type": "function" and "function": {"name", "arguments"}.
nlohmann::json delta_to_json(const Delta& delta);

// OpenAI assistant `message` for a ParsedOutput: role, content (null when absent), reasoning and
// reasoning_content (null when absent), tool_calls (omitted when there are none).
nlohmann::json message_to_json(const ParsedOutput& out);

}  // namespace fc::chat::gemma4
