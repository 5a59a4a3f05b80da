// The mask shortcuts (mask.h: plain-text skip over the split vocabulary, FOLLOW filter of
// uncertain tokens) against the reference walk of the whole trie with both off, on a synthetic
// vocabulary shaped like the 262k one (tools/vocab/make_vocab262k.py) at a size a unit test can
// brute-force: every byte, numbers 0-1999, CJK/Hangul/accented/emoji characters, partial UTF-8
// pieces, words with and without a leading space, JSON punctuation runs with quotes, escapes,
// whitespace runs. At every byte of instances that pass through awkward states (inside bounded
// integers, inside additional-property keys that spell a prefix of a listed name, after partial
// UTF-8, inside escapes) the two mask rows must be equal and equal brute force; random token
// walks compare the rows at every step.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "grammar/compiler.h"

namespace fc::grammar {
namespace {

constexpr int32_t kEos = 1;

std::shared_ptr<const Vocab> structured_vocab() {
  std::vector<std::string> bytes = {"<pad>", "<eos>", "<bos>", "<unk>"};
  std::vector<uint8_t> special = {1, 1, 1, 1};
  std::vector<std::string> seen;
  auto add = [&](const std::string& s) {
    if (s.empty()) return;
    bytes.push_back(s);
    special.push_back(0);
  };
  for (int b = 0; b < 256; ++b) add(std::string(1, static_cast<char>(b)));
  for (int n = 10; n < 2000; ++n) add(std::to_string(n));
  for (int n = 1; n < 10; ++n) add("-" + std::to_string(n));
  auto utf8 = [](char32_t c) {
    std::string o;
    if (c < 0x80) {
      o += static_cast<char>(c);
    } else if (c < 0x800) {
      o += static_cast<char>(0xC0 | (c >> 6));
      o += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      o += static_cast<char>(0xE0 | (c >> 12));
      o += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      o += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      o += static_cast<char>(0xF0 | (c >> 18));
      o += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      o += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      o += static_cast<char>(0x80 | (c & 0x3F));
    }
    return o;
  };
  for (char32_t c = 0x4E00; c < 0x4E00 + 300; ++c) add(utf8(c));
  for (char32_t c = 0xAC00; c < 0xAC00 + 60; ++c) add(utf8(c));
  for (char32_t c : {0xE9, 0xEF, 0xF1, 0xFC, 0x1F600, 0x1F680, 0xD7FF, 0xE000, 0x10FFFF})
    add(utf8(c));
  add(utf8(0x4E2D) + utf8(0x6587));  // 中文
  add(" " + utf8(0x65E5) + utf8(0x672C));
  add("na" + utf8(0xEF) + "ve");
  add("caf" + utf8(0xE9));
  for (const char* p : {"\xe4\xb8", "\xb8\xad", "\xf0\x9f", "\x98\x80", "\xc3", "a\xc3", "\xed\xa0",
                        "\xe0\x80", "\x7f", "a\x7f"})
    add(p);
  for (const char* p :
       {"\",",  "\":",         "{\"",        "\"}",     "},",   "],",    "\":\"",    "\",\"",
        "\"]",  "[{",          "}}",         "\":{",    "\":[", "\"},",  "\": ",     ", \"",
        "\\n",  "\\\"",        "\\u00",      "\\u",     "\\",   "a\"",   "e\",",     "na",
        "nam",  "name",        "name\":",    "\"name",  "\"na", "cou",   "count",    "count\":",
        "desc", "description", "descriptio", "\"descr", "lev",  "level", "level\":", "12",
        "12a",  "-1",          "-17",        "20",      "00",   "1e",    "0.",       ".5",
        "e+",   "true",        "false",      "null",    "nul",  "tr",    "2024",     "-02",
        "-29",  "high",        "low",        "\"high",  "prio", "code",  "when",     "tags",
        "x\"",  "\t",          "\r\n",       "\n",      "  "})
    add(p);
  for (int n = 1; n < 12; ++n) {
    add(std::string(static_cast<size_t>(n), ' '));
    add("\n" + std::string(static_cast<size_t>(n), ' '));
  }
  for (const char* w : {"hello", "world", "quick", "report", "Paris", "line", "break", "quote",
                        "inside", "test", "value", "item", "owner", "status", "city", "naive"}) {
    const std::string s = w;
    for (size_t k = 2; k <= s.size(); ++k) add(s.substr(0, k));
    add(" " + s);
    add(" " + std::string(1, static_cast<char>(s[0] & ~0x20)) + s.substr(1));
  }
  std::mt19937 rng(262144);
  const std::string cons = "bcdfghjklmnprstvwz", vows = "aeiou";
  while (bytes.size() < 5000) {
    std::string w;
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < n; ++k) {
      w += cons[rng() % cons.size()];
      w += vows[rng() % vows.size()];
    }
    if (rng() % 2) w = " " + w;
    add(w);
  }
  const int32_t size = static_cast<int32_t>(bytes.size()) + 37;  // padding ids past the tokens
  return std::make_shared<const Vocab>(bytes, special, size);
}

// The bounded integers, an open object (additional keys may spell prefixes of listed names),
// strings with a length bound, a pattern closed after its first bytes, a format, an enum, an
// array, a nested object.
const char* kSchema = R"X({"type":"object","properties":{
  "name":{"type":"string","maxLength":12},
  "count":{"type":"integer","minimum":7,"maximum":1234},
  "level":{"type":"integer","minimum":-20,"maximum":35},
  "description":{"type":"string"},
  "code":{"type":"string","pattern":"^[0-9]{2}.*$"},
  "when":{"type":"string","format":"date"},
  "tags":{"type":"array","items":{"type":"string"},"maxItems":4},
  "prio":{"enum":["low","high"]},
  "sub":{"type":"object","properties":{"x":{"type":"number"}},"additionalProperties":false}},
  "required":["name","count"]})X";

struct Pair {
  std::shared_ptr<const CompiledConstraint> c;
  std::shared_ptr<const GrammarMasks> fast, ref;
};

Pair compile_pair(ConstraintCompiler& cc, const std::string& schema) {
  ConstraintSpec s;
  s.kind = ConstraintSpec::Kind::kJsonSchema;
  s.text = schema;
  Pair p;
  p.c = cc.compile(s);
  p.fast = p.c->masks;
  MaskOptions off;
  off.plain_text_skip = false;
  off.follow_filter = false;
  p.ref = std::make_shared<const GrammarMasks>(p.c->grammar, cc.vocab_ptr(), nullptr, off);
  return p;
}

// Compares the fast and the reference row at the matcher's state, and (when `brute`) every
// text token against Matcher::can_accept_bytes. Adds the positions' uncertain-suffix nodes to
// the totals.
void compare_at(const Pair& p, const Vocab& v, const Matcher& m, bool brute,
                const std::string& where, size_t& fast_suffix_nodes, size_t& ref_suffix_nodes) {
  MaskScratch a, b;
  std::vector<uint32_t> rf(v.words()), rr(v.words());
  p.fast->fill(m, rf.data(), a);
  p.ref->fill(m, rr.data(), b);
  if (rf != rr) {
    for (int32_t t = 0; t < v.size(); ++t) {
      const bool x = (rf[static_cast<size_t>(t) >> 5] >> (t & 31)) & 1;
      const bool y = (rr[static_cast<size_t>(t) >> 5] >> (t & 31)) & 1;
      if (x != y) {
        ADD_FAILURE() << where << ": token " << t << " '" << (t < v.known() ? v.bytes(t) : "")
                      << "' fast " << x << " reference " << y;
        return;
      }
    }
  }
  if (brute)
    for (int32_t t = 0; t < v.known(); ++t) {
      const bool bit = (rf[static_cast<size_t>(t) >> 5] >> (t & 31)) & 1;
      const bool ok = v.text(t) && m.can_accept_bytes(v.bytes(t));
      if (bit != ok) {
        ADD_FAILURE() << where << ": token " << t << " '" << v.bytes(t) << "' mask " << bit
                      << " brute force " << ok;
        return;
      }
    }
  for (const Stack& s : m.stacks()) {
    if (!(p.c->grammar->flags[static_cast<size_t>(s.state)] & kHasBytes)) continue;
    fast_suffix_nodes += p.fast->position(s.state, a)->suffixes.nodes.size();
    ref_suffix_nodes += p.ref->position(s.state, b)->suffixes.nodes.size();
  }
}

TEST(FastMasks, EqualReferenceWalkAtEveryByteOfAwkwardInstances) {
  auto vocab = structured_vocab();
  ConstraintCompiler cc(
      vocab, [](const std::string&) { return -1; }, GemmaToolIds{});
  const Pair p = compile_pair(cc, kSchema);
  // Keys that are prefixes or extensions of listed names are additional properties.
  const std::string cjk = "\xe4\xb8\xad\xe6\x96\x87";
  const std::vector<std::string> instances = {
      "{\"name\": \"" + cjk +
          "\\u00e9x\\\"q\", \"count\": 1000, \"level\": -17, "
          "\"description\": \"na\xc3\xafve " +
          cjk + " \\n\\\\ \xf0\x9f\x98\x80\", \"code\": \"12ab" + cjk +
          "\", \"when\": \"2024-02-29\", \"tags\": [\"a\", \"\"], \"prio\": \"high\", "
          "\"sub\": {\"x\": -0.5e+3}, \"nam\": 5, \"descriptio\": [1, {\"x\": null}], \"" +
          cjk + "\": true, \"names\": \"\\u4e2d\"}",
      "{\n  \"name\": \"\",\n  \"count\": 7,\n  \"level\": 35,\n  \"c\": 1234,\n  \"co\": "
      "\"\xed\x9f\xbf\",\n  \"\": {}\n}",
      "{\"name\":\"x\",\"count\":1234,\"level\":-20,\"prio\":\"low\"}",
  };
  size_t fast_nodes = 0, ref_nodes = 0, checked = 0;
  for (size_t n = 0; n < instances.size(); ++n) {
    const std::string& text = instances[n];
    Matcher m(p.c->grammar);
    for (size_t i = 0; i <= text.size(); ++i) {
      compare_at(p, *vocab, m, i % 3 == 0,
                 "instance " + std::to_string(n) + " byte " + std::to_string(i) + " after '" +
                     text.substr(0, i) + "'",
                 fast_nodes, ref_nodes);
      if (::testing::Test::HasFailure()) return;
      ++checked;
      if (i == text.size()) break;
      ASSERT_TRUE(m.accept_bytes(text.substr(i, 1)))
          << "instance " << n << " refused at byte " << i << ": '" << text.substr(0, i + 1) << "'";
    }
    EXPECT_TRUE(m.can_end()) << "instance " << n;
  }
  EXPECT_GT(checked, 400u);
  // The FOLLOW filter must have dropped uncertain tokens (e.g. "1000".."1999" inside count).
  EXPECT_LT(fast_nodes, ref_nodes);
}

TEST(FastMasks, EqualReferenceOnRandomTokenWalks) {
  auto vocab = structured_vocab();
  ConstraintCompiler cc(
      vocab, [](const std::string&) { return -1; }, GemmaToolIds{});
  const std::vector<std::string> schemas = {
      kSchema,
      R"X({"type":"object","properties":{"id":{"type":"integer","minimum":0,"maximum":99},
          "u":{"type":"string","format":"uuid"}},"additionalProperties":{"type":"integer",
          "minimum":-5,"maximum":5000}})X",
      R"X({"type":"array","items":{"anyOf":[{"type":"string","minLength":2,"maxLength":5},
          {"type":"integer","minimum":100,"maximum":150}]},"maxItems":6})X"};
  std::mt19937 rng(5);
  size_t fast_nodes = 0, ref_nodes = 0;
  int steps = 0;
  for (size_t k = 0; k < schemas.size(); ++k) {
    const Pair p = compile_pair(cc, schemas[k]);
    for (int w = 0; w < 6; ++w) {
      TokenMatcher tm(p.c, {kEos});
      for (int step = 0; step < 60 && !tm.terminated(); ++step) {
        compare_at(p, *vocab, tm.matcher(), step % 8 == 0,
                   "schema " + std::to_string(k) + " walk " + std::to_string(w) + " step " +
                       std::to_string(step),
                   fast_nodes, ref_nodes);
        if (::testing::Test::HasFailure()) return;
        ++steps;
        std::vector<uint32_t> row(tm.words());
        MaskScratch sc;
        tm.fill_mask(row.data(), sc);
        std::vector<int32_t> go, stop;
        for (int32_t t = 0; t < vocab->size(); ++t)
          if ((row[static_cast<size_t>(t) >> 5] >> (t & 31)) & 1)
            (tm.is_stop(t) ? stop : go).push_back(t);
        if (go.empty() || (step > 40 && !stop.empty())) break;
        ASSERT_TRUE(tm.accept(go[rng() % go.size()]));
      }
    }
  }
  EXPECT_GT(steps, 300);
  EXPECT_LT(fast_nodes, ref_nodes);
}

}  // namespace
}  // namespace fc::grammar
