#include "chat/gemma4/output_parser.h"

#include <array>
#include <cstdio>
#include <optional>
#include <random>
#include <utility>

#include "chat/gemma4/args_converter.h"
#include "core/error.h"

namespace fc::chat::gemma4 {
namespace {

// Marker strings the parser acts on (spec §0). Each is one special token in the vocabulary.
enum Marker : int {
  kChOpen,     // <|channel>
  kChClose,    // <channel|>
  kCallOpen,   // <|tool_call>
  kCallClose,  // <tool_call|>
  kStrDelim,   // <|"|>
  kEos,        // <eos>            (stop token)
  kTurnClose,  // <turn|>          (stop token)
  kToolResp,   // <|tool_response> (stop token)
  kNumMarkers,
};
constexpr std::array<std::string_view, kNumMarkers> kMarkerText = {
    "<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>",
    "<|\"|>",     "<eos>",      "<turn|>",      "<|tool_response>",
};
using MarkerSet = unsigned;  // bit i set = marker i is recognised in the current state
constexpr MarkerSet bit(Marker m) {
  return 1u << m;
}
constexpr MarkerSet kStops = bit(kEos) | bit(kTurnClose) | bit(kToolResp);

constexpr std::string_view kLabel = "thought\n";  // channel label, not part of the reasoning
constexpr std::string_view kBareLabel = "thought";
constexpr std::string_view kCallPrefix = "call:";

bool is_ws(char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}

size_t last_non_ws(std::string_view s) {
  for (size_t i = s.size(); i > 0; --i)
    if (!is_ws(s[i - 1])) return i - 1;
  return std::string_view::npos;
}

// Function-name characters: vLLM's [\w\-\.]; non-ASCII bytes stand in for Unicode \w.
bool is_name_char(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || u >= 0x80;
}

// Next token of s: a text run (up to a '<' that starts or may start a recognised marker), a
// recognised marker, or kNeedMore when s is empty or is itself an incomplete marker prefix.
// At end of output (eof) incomplete prefixes are plain text.
struct Token {
  enum Kind { kText, kMarker, kNeedMore } kind;
  size_t len = 0;
  Marker marker = kNumMarkers;
};

Token scan(std::string_view s, MarkerSet set, bool eof) {
  if (s.empty()) return {Token::kNeedMore};
  size_t from = 0;
  while (true) {
    size_t lt = s.find('<', from);
    if (lt == std::string_view::npos) return {Token::kText, s.size()};
    std::string_view at = s.substr(lt);
    bool partial = false;
    for (int m = 0; m < kNumMarkers; ++m) {
      if (!(set & (1u << m))) continue;
      if (at.starts_with(kMarkerText[m])) {
        if (lt > 0) return {Token::kText, lt};
        return {Token::kMarker, kMarkerText[m].size(), static_cast<Marker>(m)};
      }
      if (!eof && kMarkerText[m].starts_with(at)) partial = true;
    }
    if (partial) return lt > 0 ? Token{Token::kText, lt} : Token{Token::kNeedMore};
    from = lt + 1;
  }
}

// Content text with the whitespace rules of vLLM's engine (strip_content_whitespace_with_tools):
// trailing whitespace waits until more non-blank content comes (dropped at the end if a tool was
// called); leading whitespace is dropped if a tool call came before any non-blank content.
class ContentSink {
 public:
  void text(std::string_view s, std::string* out) {
    if (!seen_non_ws_) {
      size_t first = 0;
      while (first < s.size() && is_ws(s[first])) ++first;
      hold_ += s.substr(0, first);
      if (first == s.size()) return;
      s.remove_prefix(first);
      if (!tools_called_) *out += hold_;  // leading blank: kept unless a call came first
      hold_.clear();
      seen_non_ws_ = true;
    }
    size_t last = last_non_ws(s);
    if (last == std::string_view::npos) {
      hold_ += s;
      return;
    }
    *out += hold_;
    hold_.clear();
    out->append(s.substr(0, last + 1));
    hold_ = s.substr(last + 1);
  }
  void tool_call_started() { tools_called_ = true; }
  void finish(std::string* out) {
    if (!tools_called_) *out += hold_;
    hold_.clear();
  }

 private:
  std::string hold_;
  bool seen_non_ws_ = false;
  bool tools_called_ = false;
};

// Reasoning text: drops each channel's `thought\n` label (vLLM Gemma4Parser._events_to_delta,
// done per channel) and the trailing whitespace of the whole reasoning (vLLM engine
// strip_trailing_reasoning_whitespace).
class ReasoningSink {
 public:
  // A channel opened; its first characters are checked against the label.
  void channel_start() {
    probing_ = true;
    probe_.clear();
  }
  // A channel whose label has already been consumed.
  void channel_start_without_label() {
    probing_ = false;
    probe_.clear();
  }
  void text(std::string_view s, std::string* out) {
    if (!probing_) return emit(s, out);
    probe_ += s;
    if (probe_.size() < kLabel.size() && kLabel.starts_with(probe_)) return;  // may be the label
    probing_ = false;
    std::string p = std::move(probe_);
    probe_.clear();
    emit(std::string_view(p).substr(p.starts_with(kLabel) ? kLabel.size() : 0), out);
  }
  void channel_end(std::string* out) {
    if (probing_ && probe_ != kBareLabel) emit(probe_, out);  // "thought" alone is a label
    probing_ = false;
    probe_.clear();
  }
  void finish() { hold_.clear(); }

 private:
  void emit(std::string_view s, std::string* out) {
    size_t last = last_non_ws(s);
    if (last == std::string_view::npos) {
      hold_ += s;
      return;
    }
    *out += hold_;
    hold_.clear();
    out->append(s.substr(0, last + 1));
    hold_ = s.substr(last + 1);
  }

  bool probing_ = false;
  std::string probe_;  // channel start, while it is a proper prefix of the label
  std::string hold_;   // trailing whitespace
};

}  // namespace

struct StreamParser::Impl {
  enum class State {
    kContent,
    kReasoning,
    kHeader,     // after <|tool_call>, reading `call:NAME{`
    kArgs,       // inside the argument object
    kAfterArgs,  // argument object closed, waiting for <tool_call|>
    kMalformed,  // bad header: raw text is content up to <tool_call|>
  };

  explicit Impl(ParseOptions o) : opts(std::move(o)) {
    if (opts.reasoning && opts.start_in_reasoning) {
      state = State::kReasoning;
      reasoning.channel_start();
    } else {
      start_probe = opts.reasoning;
    }
  }

  // 128 random bits per id straight from the OS source, like vLLM's uuid4().hex.
  std::string make_id() {
    if (opts.make_tool_call_id) return opts.make_tool_call_id();
    char buf[40];
    if (!random) random.emplace();  // opening the OS source costs ~10 us: only when needed
    std::random_device& r = *random;
    std::snprintf(buf, sizeof(buf), "%08x%08x%08x%08x", r(), r(), r(), r());
    return std::string("chatcmpl-tool-") + buf;
  }

  MarkerSet recognized() const {
    MarkerSet calls = opts.tools ? (bit(kCallOpen) | bit(kCallClose)) : 0;
    MarkerSet chans = opts.reasoning ? (bit(kChOpen) | bit(kChClose)) : 0;
    switch (state) {
      case State::kContent:
      case State::kReasoning:
        return kStops | calls | chans;
      case State::kArgs:
        return kStops | calls | bit(kStrDelim);
      default:
        return kStops | calls;
    }
  }

  ToolCallDelta& entry(int index) {
    auto& v = delta.tool_calls;
    if (v.empty() || v.back().index != index)
      v.push_back(ToolCallDelta{index, std::nullopt, std::nullopt, ""});
    return v.back();
  }

  void drain_args() {
    if (args_out.empty()) return;
    entry(n_calls - 1).arguments += args_out;
    args_out.clear();
  }

  // ---- tool-call header ----
  void begin_header() {
    header.clear();
    name.clear();
    in_name = false;
    state = State::kHeader;
  }
  // The header went wrong: what was read so far is content.
  void header_to_content() {
    content.text(std::string(kMarkerText[kCallOpen]) + header, &delta.content);
    header.clear();
    name.clear();
  }
  void start_call() {
    tools_called = true;
    content.tool_call_started();
    ToolCallDelta& e = entry(n_calls++);
    e.id = make_id();
    e.name = name;
    args.begin(&args_out);
    drain_args();
    header.clear();
    name.clear();
    state = State::kArgs;
  }
  size_t header_text(std::string_view s) {
    for (size_t i = 0; i < s.size(); ++i) {
      const char c = s[i];
      if (!in_name) {
        if (header.empty() && c == ':') {  // `<|tool_call>:name{` (vLLM engine tolerance)
          header.push_back(c);
          in_name = true;
          continue;
        }
        if (header.size() < kCallPrefix.size() && c == kCallPrefix[header.size()]) {
          header.push_back(c);
          in_name = header.size() == kCallPrefix.size();
          continue;
        }
      } else if (is_name_char(c)) {
        header.push_back(c);
        name.push_back(c);
        continue;
      } else if (c == '{' && !name.empty()) {
        start_call();
        return i + 1;
      }
      header_to_content();
      state = State::kMalformed;
      return i;  // the offending character is re-read as malformed-call content
    }
    return s.size();
  }

  void end_call() {
    if (!args.done()) args.finish();
    drain_args();
  }

  // ---- reasoning / content ----
  void enter_reasoning(bool label_consumed) {
    state = State::kReasoning;
    if (label_consumed) {
      reasoning.channel_start_without_label();
    } else {
      reasoning.channel_start();
    }
  }
  // Output-start check for a bare `thought\n` label (vLLM Gemma4Parser._preprocess_feed).
  size_t start_probe_text(std::string_view s) {
    size_t i = 0;
    while (i < s.size() && start_buf.size() < kLabel.size() && s[i] == kLabel[start_buf.size()])
      start_buf.push_back(s[i++]);
    if (start_buf.size() == kLabel.size()) {
      start_probe = false;
      start_buf.clear();
      enter_reasoning(/*label_consumed=*/true);
      return i;
    }
    if (i == s.size()) return i;
    start_probe = false;  // diverged: what was held is ordinary content
    content.text(start_buf, &delta.content);
    start_buf.clear();
    content.text(s.substr(i), &delta.content);
    return s.size();
  }
  // A marker or the end of output arrived while probing: "thought" counts as the label.
  void resolve_start_probe() {
    start_probe = false;
    if (start_buf == kBareLabel) {
      enter_reasoning(/*label_consumed=*/true);
    } else {
      content.text(start_buf, &delta.content);
    }
    start_buf.clear();
  }

  size_t on_text(std::string_view s) {
    switch (state) {
      case State::kContent:
        if (start_probe) return start_probe_text(s);
        content.text(s, &delta.content);
        return s.size();
      case State::kReasoning:
        reasoning.text(s, &delta.reasoning);
        return s.size();
      case State::kHeader:
        return header_text(s);
      case State::kArgs: {
        size_t n = args.text(s);
        drain_args();
        if (args.done()) state = State::kAfterArgs;
        return n;
      }
      case State::kAfterArgs:
        return s.size();  // junk between the closing '}' and <tool_call|>
      case State::kMalformed:
        content.text(s, &delta.content);
        return s.size();
    }
    return s.size();
  }

  void on_marker(Marker m) {
    const bool stop = (kStops & bit(m)) != 0;
    switch (state) {
      case State::kContent:
        if (start_probe) {
          resolve_start_probe();
          if (state != State::kContent) return on_marker(m);
        }
        if (m == kChOpen) enter_reasoning(/*label_consumed=*/false);
        if (m == kCallOpen) begin_header();
        // <channel|>, <tool_call|> and stop markers in content are dropped.
        return;
      case State::kReasoning:
        if (m == kChOpen) {
          reasoning.channel_end(&delta.reasoning);
          reasoning.channel_start();
        } else if (m == kChClose) {
          reasoning.channel_end(&delta.reasoning);
          state = State::kContent;
        } else if (m == kCallOpen) {
          reasoning.channel_end(&delta.reasoning);
          begin_header();
        }
        return;
      case State::kHeader:
        header_to_content();
        if (m == kCallOpen) return begin_header();
        if (m == kCallClose) content.text(kMarkerText[kCallClose], &delta.content);
        state = State::kContent;
        return;
      case State::kArgs:
        if (m == kStrDelim) {
          args.delim();
          drain_args();
          return;
        }
        end_call();
        [[fallthrough]];
      case State::kAfterArgs:
        if (m == kCallOpen) return begin_header();
        state = State::kContent;
        return;
      case State::kMalformed:
        if (m == kCallOpen) return begin_header();
        if (!stop) content.text(kMarkerText[m], &delta.content);
        state = State::kContent;
        return;
    }
  }

  void pump(bool eof) {
    while (true) {
      std::string_view rest = std::string_view(buf).substr(pos);
      Token t = scan(rest, recognized(), eof);
      if (t.kind == Token::kNeedMore) break;
      if (t.kind == Token::kMarker) {
        pos += t.len;
        on_marker(t.marker);
      } else {
        pos += on_text(rest.substr(0, t.len));
      }
    }
    buf.erase(0, pos);
    pos = 0;
  }

  Delta take() { return std::exchange(delta, Delta{}); }

  ParseOptions opts;
  std::optional<std::random_device> random;  // for ids when opts.make_tool_call_id is empty
  State state = State::kContent;
  std::string buf;  // input not consumed yet (an incomplete marker prefix at most)
  size_t pos = 0;
  Delta delta;  // output of the current feed()/finish()
  ContentSink content;
  ReasoningSink reasoning;
  bool start_probe = false;  // output start may still be a bare `thought\n` label
  std::string start_buf;
  std::string header;  // text after <|tool_call>
  std::string name;
  bool in_name = false;
  ArgsConverter args;
  std::string args_out;  // JSON written by args, not yet moved into delta
  int n_calls = 0;
  bool tools_called = false;
  bool finished = false;
};

StreamParser::StreamParser(ParseOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
StreamParser::~StreamParser() = default;
StreamParser::StreamParser(StreamParser&&) noexcept = default;
StreamParser& StreamParser::operator=(StreamParser&&) noexcept = default;

Delta StreamParser::feed(std::string_view text) {
  FC_CHECK(!impl_->finished, "gemma4 StreamParser: feed() after finish()");
  impl_->buf.append(text);
  impl_->pump(/*eof=*/false);
  return impl_->take();
}

Delta StreamParser::finish() {
  Impl& p = *impl_;
  FC_CHECK(!p.finished, "gemma4 StreamParser: finish() called twice");
  p.pump(/*eof=*/true);
  switch (p.state) {
    case Impl::State::kContent:
      if (p.start_probe) {
        if (p.start_buf == kBareLabel) p.start_buf.clear();  // an empty thought channel
        p.resolve_start_probe();
      }
      break;
    case Impl::State::kReasoning:
      p.reasoning.channel_end(&p.delta.reasoning);
      break;
    case Impl::State::kHeader:
      p.header_to_content();
      break;
    case Impl::State::kArgs:
      p.end_call();
      break;
    default:
      break;
  }
  p.content.finish(&p.delta.content);
  p.reasoning.finish();
  p.finished = true;
  return p.take();
}

bool StreamParser::tools_called() const {
  return impl_->tools_called;
}

ParsedOutput parse_output(std::string_view text, const ParseOptions& options) {
  StreamParser parser(options);
  ParsedOutput out;
  std::string reasoning, content;
  for (const Delta& d : {parser.feed(text), parser.finish()}) {
    reasoning += d.reasoning;
    content += d.content;
    for (const ToolCallDelta& t : d.tool_calls) {
      if (t.index >= static_cast<int>(out.tool_calls.size())) out.tool_calls.resize(t.index + 1);
      ToolCall& call = out.tool_calls[t.index];
      if (t.id) call.id = *t.id;
      if (t.name) call.name = *t.name;
      call.arguments += t.arguments;
    }
  }
  if (!reasoning.empty()) out.reasoning = std::move(reasoning);
  if (!content.empty()) out.content = std::move(content);
  return out;
}

bool prompt_ends_in_open_reasoning(std::string_view prompt) {
  size_t open = prompt.rfind(kMarkerText[kChOpen]);
  if (open == std::string_view::npos) return false;
  for (std::string_view boundary : {kMarkerText[kChClose], kMarkerText[kCallOpen],
                                    std::string_view("<|turn>"), kMarkerText[kToolResp]}) {
    size_t at = prompt.rfind(boundary);
    if (at != std::string_view::npos && at > open) return false;
  }
  return true;
}

nlohmann::json delta_to_json(const Delta& delta) {
  nlohmann::json j = nlohmann::json::object();
  if (!delta.reasoning.empty()) {
    j["reasoning"] = delta.reasoning;
    j["reasoning_content"] = delta.reasoning;
  }
  if (!delta.content.empty()) j["content"] = delta.content;
  if (!delta.tool_calls.empty()) {
    nlohmann::json calls = nlohmann::json::array();
    for (const ToolCallDelta& t : delta.tool_calls) {
      nlohmann::json c = {{"index", t.index}};
      nlohmann::json fn = {{"arguments", t.arguments}};
      if (t.id) {
        c["id"] = *t.id;
        c["type"] = "function";
      }
      if (t.name) fn["name"] = *t.name;
      c["function"] = std::move(fn);
      calls.push_back(std::move(c));
    }
    j["tool_calls"] = std::move(calls);
  }
  return j;
}

nlohmann::json message_to_json(const ParsedOutput& out) {
  nlohmann::json j = {{"role", "assistant"}};
  j["content"] = out.content ? nlohmann::json(*out.content) : nlohmann::json(nullptr);
  j["reasoning"] = out.reasoning ? nlohmann::json(*out.reasoning) : nlohmann::json(nullptr);
  j["reasoning_content"] = j["reasoning"];
  if (!out.tool_calls.empty()) {
    nlohmann::json calls = nlohmann::json::array();
    for (const ToolCall& t : out.tool_calls)
      calls.push_back({{"id", t.id},
                       {"type", "function"},
                       {"function", {{"name", t.name}, {"arguments", t.arguments}}}});
    j["tool_calls"] = std::move(calls);
  }
  return j;
}

std::vector<std::string_view> consumed_markers(const ParseOptions& options) {
  MarkerSet set = kStops;
  if (options.reasoning) set |= bit(kChOpen) | bit(kChClose);
  if (options.tools) set |= bit(kCallOpen) | bit(kCallClose) | bit(kStrDelim);
  std::vector<std::string_view> out;
  for (int m = 0; m < kNumMarkers; ++m)
    if (set & bit(static_cast<Marker>(m))) out.push_back(kMarkerText[static_cast<size_t>(m)]);
  return out;
}

}  // namespace fc::chat::gemma4
