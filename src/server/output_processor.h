// Turns one choice's generated token ids into OpenAI output: streaming detokenisation (special
// tokens kept while a Gemma 4 parser needs them, spec chat-tokenizer-api.md §3.3), stop strings
// (held back until they can no longer match, as vLLM's detokenizer does), then the reasoning /
// tool-call parser, and per-token logprobs.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "chat/gemma4/output_parser.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace fc {

struct OutputOptions {
  // Parsers; with both off the text is decoded with skip_special_tokens as requested.
  bool reasoning = false;
  bool tools = false;
  bool start_in_reasoning = false;
  bool skip_special_tokens = true;
  std::vector<std::string> stop;
  bool include_stop_str_in_output = false;
  int min_tokens = 0;  // stop strings end the output only once this many tokens were generated
  bool logprobs = false;
  // Text the prompt already forced into the output (tool_choice required/named): parsed as if
  // generated, so the tool-call parser sees the call header.
  std::string forced_prefix;
};

struct OutputStep {
  chat::gemma4::Delta delta;                          // reasoning / content / tool-call fragments
  nlohmann::json logprobs = nlohmann::json::array();  // OpenAI chat logprobs "content" entries
  std::optional<std::string> stop_hit;                // the stop string that ended the output
};

// One OpenAI chat logprobs entry {token, logprob, bytes, top_logprobs} for `token` (the id
// decoded with special tokens; logprobs clamped at -9999 as vLLM does).
nlohmann::json logprob_entry(const tok::Tokenizer& tok, int32_t token, const SampleResult& r);

class OutputProcessor {
 public:
  OutputProcessor(const tok::Tokenizer& tok, OutputOptions opt);
  // Feeds newly generated ids (and their logprobs when requested). With drop_last_text, the last
  // id (a stop token) counts for logprobs but adds no text, as vLLM drops a stop token's text
  // unless include_stop_str_in_output. After a stop string hit, further input is ignored.
  OutputStep push(const std::vector<int32_t>& ids, const std::vector<SampleResult>& logprobs,
                  bool drop_last_text = false);
  // End of generation: flushes held-back text and the parser.
  OutputStep finish();
  bool tools_called() const { return parser_ && parser_->tools_called(); }
  bool stopped() const { return stopped_; }
  // The whole visible output so far (content only, for /v1/completions and echo).
  const std::string& text() const { return text_; }

 private:
  void emit(std::string_view raw, OutputStep& step);  // through the parser (or straight)
  // Detokenises ids into the pending text; with `search`, a stop string there ends the output.
  void feed(std::span<const int32_t> ids, bool search, OutputStep& step);
  void add_logprobs(const std::vector<int32_t>& ids, const std::vector<SampleResult>& lps,
                    OutputStep& step);

  const tok::Tokenizer& tok_;
  OutputOptions opt_;
  tok::StreamDecoder decoder_;
  std::unique_ptr<chat::gemma4::StreamParser> parser_;
  // With a parser and skip_special_tokens: the special ids the parser reads; other special ids
  // are dropped before detokenisation (no stray <|…|> marker in content or reasoning).
  std::vector<int32_t> parser_specials_;
  bool filter_specials_ = false;
  std::vector<int32_t> text_ids_;  // scratch: the ids of one push that produce text
  std::string pending_;            // raw text held back for stop-string matching
  size_t max_stop_ = 0;
  bool stopped_ = false;
  int64_t tokens_ = 0;  // ids pushed so far
  std::string text_;
  OutputStep prefix_step_;  // what the forced prefix produced (a tool call's id and name)
};

}  // namespace fc
