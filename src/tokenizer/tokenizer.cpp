#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/json_limits.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace fc::tok {
namespace {

using detail::JsonAt;

// Spec §0 strings with the ids the spec documents (used only by differences_from_spec; the
// tokenizer itself always takes ids from the file).
struct GemmaEntry {
  const char* text;
  int32_t Gemma4Ids::*field;
  int32_t spec_id;
};
constexpr GemmaEntry kGemma4Entries[] = {
    {"<pad>", &Gemma4Ids::pad, 0},
    {"<eos>", &Gemma4Ids::eos, 1},
    {"<bos>", &Gemma4Ids::bos, 2},
    {"<unk>", &Gemma4Ids::unk, 3},
    {"<mask>", &Gemma4Ids::mask, 4},
    {"<|tool>", &Gemma4Ids::tool_open, 46},
    {"<tool|>", &Gemma4Ids::tool_close, 47},
    {"<|tool_call>", &Gemma4Ids::tool_call_open, 48},
    {"<tool_call|>", &Gemma4Ids::tool_call_close, 49},
    {"<|tool_response>", &Gemma4Ids::tool_response_open, 50},
    {"<tool_response|>", &Gemma4Ids::tool_response_close, 51},
    {"<|\"|>", &Gemma4Ids::string_delim, 52},
    {"<|think|>", &Gemma4Ids::think, 98},
    {"<|channel>", &Gemma4Ids::channel_open, 100},
    {"<channel|>", &Gemma4Ids::channel_close, 101},
    {"<|turn>", &Gemma4Ids::turn_open, 105},
    {"<turn|>", &Gemma4Ids::turn_close, 106},
    {"\n", &Gemma4Ids::newline, 107},
    {"\n\n", &Gemma4Ids::newline2, 108},
    {"\n\n\n", &Gemma4Ids::newline3, 109},
    {"\xE2\x96\x81", &Gemma4Ids::space_marker, 236743},
    {"<|image>", &Gemma4Ids::image_open, 255999},
    {"<|audio>", &Gemma4Ids::audio_open, 256000},
    {"<|image|>", &Gemma4Ids::image, 258880},
    {"<|audio|>", &Gemma4Ids::audio, 258881},
    {"<image|>", &Gemma4Ids::image_close, 258882},
    {"<audio|>", &Gemma4Ids::audio_close, 258883},
    {"<|video|>", &Gemma4Ids::video, 258884},
};

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> Gemma4Ids::differences_from_spec() const {
  std::vector<std::string> out;
  for (const GemmaEntry& e : kGemma4Entries) {
    const int32_t got = this->*e.field;
    if (got != e.spec_id) {
      out.push_back(str_cat(printable(e.text), ": file ",
                            got < 0 ? std::string("missing") : std::to_string(got), ", spec ",
                            e.spec_id));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open tokenizer file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(path, ": cannot read tokenizer file");
  return from_json_text(ss.str(), path);
}

Tokenizer Tokenizer::from_json_text(std::string_view text, const std::string& origin) {
  return from_json(parse_json(text, origin), origin);
}

Tokenizer Tokenizer::from_json(const nlohmann::json& doc, const std::string& origin) {
  auto m = std::make_unique<Impl>();
  m->origin = origin;
  const nlohmann::json null_json;
  const JsonAt root{doc, m->origin, ""};
  root.object();
  if (const auto* v = root.find("version")) {
    if (!v->is_string() || v->get<std::string>() != "1.0") {
      root.at("version").fail("unknown tokenizer.json version (expected \"1.0\")");
    }
  }
  m->normalizer = detail::Normalizer::parse(root.find_at("normalizer", null_json));
  m->pre_tokenizer = detail::PreTokenizer::parse(root.find_at("pre_tokenizer", null_json));
  m->model = detail::BpeModel::parse(root.at("model"));
  m->decoder = detail::Decoder::parse(root.find_at("decoder", null_json));
  m->post = detail::PostProcessor::parse(root.find_at("post_processor", null_json));
  const nlohmann::json empty_array = nlohmann::json::array();
  m->added =
      detail::AddedVocab::parse(root.find_at("added_tokens", empty_array), m->model, m->normalizer);

  for (const auto& t : m->added.tokens()) {
    m->added_public.push_back(
        {t.content, t.id, t.special, t.normalized, t.lstrip, t.rstrip, t.single_word});
  }
  m->id_bound = std::max(m->model.id_bound(), m->added.max_id() + 1);
  m->piece_by_id.assign(static_cast<size_t>(m->id_bound), nullptr);
  m->special_by_id.assign(static_cast<size_t>(m->id_bound), 0);
  for (int32_t id = 0; id < m->id_bound; ++id) {
    const detail::AddedTokenInfo* t = m->added.by_id(id);
    const std::string* p = t != nullptr ? &t->content : m->model.id_to_token(id);
    m->piece_by_id[id] = p;
    m->special_by_id[id] = p != nullptr && m->added.is_special_content(*p);
  }
  for (const GemmaEntry& e : kGemma4Entries) {
    std::optional<int32_t> id = m->added.id_of(e.text);
    if (!id) id = m->model.token_to_id(e.text);
    m->gemma.*e.field = id ? *id : -1;
  }
  return Tokenizer(std::move(m));
}

// ---------------------------------------------------------------------------------------------
// Encode / decode
// ---------------------------------------------------------------------------------------------

std::vector<int32_t> Tokenizer::encode(std::string_view text, const EncodeOptions& opt) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode_into(text, out, opt);
  return out;
}

void Tokenizer::encode_into(std::string_view text, std::vector<int32_t>& out,
                            const EncodeOptions& opt) const {
  const Impl& m = *impl_;
  const size_t valid = detail::utf8_valid_prefix(text);
  if (valid != text.size()) {
    fail(m.origin, ": encode: input is not valid UTF-8 (byte offset ", valid, ")");
  }
  std::vector<int32_t> seq;
  std::vector<int32_t>& dst = opt.add_special_tokens ? seq : out;
  std::vector<detail::AddedVocab::Split> raw_splits, norm_splits;
  std::vector<detail::PreTokenizer::Range> words, tmp;
  detail::BpeScratch bpe;
  std::string norm;

  // 1. Non-normalized added tokens on the raw text.
  m.added.split(text, /*normalized_set=*/false, opt.parse_special, raw_splits);
  for (const auto& a : raw_splits) {
    if (a.id >= 0) {
      dst.push_back(a.id);
      continue;
    }
    if (a.end == a.begin) continue;
    // 2. Normalize the span, then split out normalized added tokens.
    m.normalizer.apply(text.substr(a.begin, a.end - a.begin), norm);
    m.added.split(norm, /*normalized_set=*/true, opt.parse_special, norm_splits);
    const std::string_view nv(norm);
    for (const auto& b : norm_splits) {
      if (b.id >= 0) {
        dst.push_back(b.id);
        continue;
      }
      if (b.end == b.begin) continue;
      // 3. Pre-tokenize, 4. BPE each word.
      const std::string_view span = nv.substr(b.begin, b.end - b.begin);
      m.pre_tokenizer.apply(span, words, tmp);
      for (const auto& w : words)
        m.model.tokenize(span.substr(w.first, w.second - w.first), dst, bpe);
    }
  }
  if (opt.add_special_tokens) {
    m.post.apply(seq);
    out.insert(out.end(), seq.begin(), seq.end());
  }
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<std::string> pieces;
  pieces.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* p = m.piece(id);
    if (p == nullptr || (skip_special_tokens && m.special(id))) continue;
    pieces.emplace_back(*p);
  }
  return m.decoder.decode(std::move(pieces));
}

// ---------------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------------

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = impl_->added.id_of(token)) return id;
  return impl_->model.token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  const std::string* p = impl_->piece(id);
  if (p == nullptr) return std::nullopt;
  return *p;
}

bool Tokenizer::is_special(int32_t id) const {
  return impl_->special(id);
}
size_t Tokenizer::vocab_size() const {
  return impl_->model.vocab_size();
}
int32_t Tokenizer::id_bound() const {
  return impl_->id_bound;
}
const std::vector<AddedToken>& Tokenizer::added_tokens() const {
  return impl_->added_public;
}
const Gemma4Ids& Tokenizer::gemma4_ids() const {
  return impl_->gemma;
}
const std::string& Tokenizer::origin() const {
  return impl_->origin;
}

}  // namespace fc::tok
