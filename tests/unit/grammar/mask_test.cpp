// Token masks equal brute force: on a toy vocabulary (every byte, random multi-byte pieces with
// JSON punctuation, partial UTF-8, special tokens), at every step of random walks through
// several grammars, the mask bit of each token equals "the matcher accepts this token now".
// Also: rollback restores exactly the state a fresh replay reaches, and drafts validate.
#include <gtest/gtest.h>

#include <random>

#include "grammar/compiler.h"

namespace fc::grammar {
namespace {

constexpr int32_t kEos = 1, kToolOpen = 48, kToolClose = 49, kDelim = 52, kToolResp = 50;

std::shared_ptr<const Vocab> toy_vocab() {
  std::vector<std::string> bytes(600);
  std::vector<uint8_t> special(600, 0);
  auto sp = [&](int32_t id, const char* text) {
    bytes[static_cast<size_t>(id)] = text;
    special[static_cast<size_t>(id)] = 1;
  };
  sp(0, "<pad>");
  sp(kEos, "<eos>");
  sp(kToolOpen, "<|tool_call>");
  sp(kToolClose, "<tool_call|>");
  sp(kToolResp, "<|tool_response>");
  sp(kDelim, "<|\"|>");
  for (int b = 0; b < 256; ++b)
    bytes[static_cast<size_t>(100 + b)] = std::string(1, static_cast<char>(b));
  std::mt19937 rng(7);
  const std::string alpha = "{}[]\":, \n0123456789-.eEabcnrtulfsxyz\\<|>_";
  const std::vector<std::string> pieces = {
      "\":",  "\",",  "\"}", "},",  "]}",    "\":\"",    "{\"",      "true", "false",
      "null", "123",  "0.5", "e+1", "\\u00", "\xc3\xa9", "\xe4\xb8", "\xad", "call:",
      "get",  "name", "<|",  "  ",  "\n  ",  ", \"",     "\": ",     "-1"};
  int32_t id = 356;
  for (const std::string& p : pieces) bytes[static_cast<size_t>(id++)] = p;
  while (id < 600) {
    std::string s;
    const int len = 2 + static_cast<int>(rng() % 5);
    for (int k = 0; k < len; ++k) s += alpha[rng() % alpha.size()];
    bytes[static_cast<size_t>(id++)] = s;
  }
  return std::make_shared<const Vocab>(bytes, special, 640);  // ids 600..639: padding
}

ConstraintCompiler make_compiler() {
  GemmaToolIds ids;
  ids.tool_call_open = kToolOpen;
  ids.tool_call_close = kToolClose;
  ids.string_delim = kDelim;
  return ConstraintCompiler(
      toy_vocab(),
      [](const std::string& t) {
        return t == "<|tool_call>" ? kToolOpen : t == "<tool_call|>" ? kToolClose : -1;
      },
      ids);
}

bool bit(const std::vector<uint32_t>& row, int32_t t) {
  return (row[static_cast<size_t>(t) >> 5] >> (t & 31)) & 1;
}

// Random walks; every mask compared with brute force. Returns the number of steps checked.
int check_walks(ConstraintCompiler& cc, const ConstraintSpec& spec, int walks, int max_len) {
  auto c = cc.compile(spec);
  std::mt19937 rng(11);
  MaskScratch scratch;
  int steps = 0;
  for (int w = 0; w < walks; ++w) {
    TokenMatcher m(c, {kEos, kToolResp});
    std::vector<int32_t> taken;
    for (int step = 0; step < max_len && !m.terminated(); ++step) {
      std::vector<uint32_t> row(m.words());
      m.fill_mask(row.data(), scratch);
      std::vector<int32_t> allowed;
      for (int32_t t = 0; t < cc.vocab().size(); ++t) {
        const int32_t one[1] = {t};
        const bool brute = m.valid_prefix(one) == 1;
        EXPECT_EQ(bit(row, t), brute)
            << kind_name(spec.kind) << " walk " << w << " step " << step << " token " << t << " '"
            << (t < cc.vocab().known() ? cc.vocab().bytes(t) : "") << "'";
        if (brute) allowed.push_back(t);
      }
      if (::testing::Test::HasFailure()) return steps;
      ++steps;
      if (allowed.empty()) break;
      // Prefer continuing over stopping until late in the walk.
      std::vector<int32_t> go;
      for (int32_t t : allowed)
        if (!m.is_stop(t) || step > max_len / 2) go.push_back(t);
      if (go.empty()) go = allowed;
      const int32_t t = go[rng() % go.size()];
      EXPECT_TRUE(m.accept(t));
      taken.push_back(t);
    }
  }
  return steps;
}

ConstraintSpec spec(ConstraintSpec::Kind k, const std::string& text) {
  ConstraintSpec s;
  s.kind = k;
  s.text = text;
  return s;
}

TEST(Masks, JsonObjectEqualsBruteForce) {
  auto cc = make_compiler();
  EXPECT_GT(check_walks(cc, spec(ConstraintSpec::Kind::kJsonObject, ""), 6, 40), 100);
}

TEST(Masks, JsonSchemaEqualsBruteForce) {
  auto cc = make_compiler();
  const char* schema = R"X({"type":"object","properties":{
      "name":{"type":"string","maxLength":6},"n":{"type":"integer","minimum":-3,"maximum":250},
      "tags":{"type":"array","items":{"enum":["a","bc",null]}},"x":{"type":"number"},
      "sub":{"anyOf":[{"type":"null"},{"$ref":"#"}]}},"required":["n"]})X";
  EXPECT_GT(check_walks(cc, spec(ConstraintSpec::Kind::kJsonSchema, schema), 8, 40), 150);
}

TEST(Masks, RegexGrammarChoiceEqualBruteForce) {
  auto cc = make_compiler();
  check_walks(cc, spec(ConstraintSpec::Kind::kRegex, "(ab|[0-9]+\\.?)+(é|中)?x{0,3}"), 6, 20);
  check_walks(cc,
              spec(ConstraintSpec::Kind::kGrammar,
                   "root ::= item (\", \" item)*\nitem ::= [a-z]+ | \"[\" root \"]\" | \"null\""),
              6, 30);
  check_walks(cc, spec(ConstraintSpec::Kind::kChoice, R"X(["true","false","truest","a b"])X"), 6,
              10);
}

TEST(Masks, GemmaToolCallsEqualBruteForce) {
  auto cc = make_compiler();
  ConstraintSpec s;
  s.kind = ConstraintSpec::Kind::kToolCalls;
  s.tools = {{"get", nlohmann::ordered_json::parse(R"X({"type":"object","properties":{
                 "city":{"type":"string"},"n":{"type":"integer"}},"required":["city"]})X")},
             {"name", nullptr}};
  check_walks(cc, s, 6, 30);
  s.tool_options.required = false;
  check_walks(cc, s, 6, 30);
}

TEST(Masks, RollbackEqualsFreshReplay) {
  auto cc = make_compiler();
  auto c = cc.compile(spec(ConstraintSpec::Kind::kJsonObject, ""));
  MaskScratch scratch;
  std::mt19937 rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    TokenMatcher m(c, {kEos});
    std::vector<int32_t> taken;
    for (int k = 0; k < 12; ++k) {
      std::vector<uint32_t> row(m.words());
      m.fill_mask(row.data(), scratch);
      std::vector<int32_t> ok;
      for (int32_t t = 0; t < 600; ++t)
        if (bit(row, t) && t != kEos) ok.push_back(t);
      if (ok.empty()) break;
      taken.push_back(ok[rng() % ok.size()]);
      ASSERT_TRUE(m.accept(taken.back()));
    }
    const size_t back = rng() % (taken.size() + 1);
    m.rollback(back);
    TokenMatcher fresh(c, {kEos});
    for (size_t i = 0; i + back < taken.size(); ++i) ASSERT_TRUE(fresh.accept(taken[i]));
    std::vector<uint32_t> a(m.words()), b(m.words());
    m.fill_mask(a.data(), scratch);
    fresh.fill_mask(b.data(), scratch);
    EXPECT_EQ(a, b) << "trial " << trial << " rolled back " << back;
    // Drafts: the valid prefix stops at the first token the mask refuses.
    std::vector<int32_t> drafts(taken.end() - static_cast<std::ptrdiff_t>(back), taken.end());
    drafts.push_back(kToolClose);  // never allowed in JSON
    EXPECT_EQ(m.valid_prefix(drafts), back);
  }
}

TEST(Masks, StopOnlyWhenComplete) {
  auto cc = make_compiler();
  auto c = cc.compile(spec(ConstraintSpec::Kind::kChoice, R"X(["12","123"])X"));
  MaskScratch scratch;
  TokenMatcher m(c, {kEos});
  std::vector<uint32_t> row(m.words());
  m.fill_mask(row.data(), scratch);
  EXPECT_FALSE(bit(row, kEos));
  ASSERT_TRUE(m.accept(100 + '1'));
  ASSERT_TRUE(m.accept(100 + '2'));
  m.fill_mask(row.data(), scratch);
  EXPECT_TRUE(bit(row, kEos));
  EXPECT_TRUE(bit(row, 100 + '3'));
  ASSERT_TRUE(m.accept(100 + '3'));
  m.fill_mask(row.data(), scratch);
  for (int32_t t = 0; t < 640; ++t) EXPECT_EQ(bit(row, t), t == kEos) << t;  // only the stop
  ASSERT_TRUE(m.accept(kEos));
  EXPECT_TRUE(m.terminated());
  EXPECT_FALSE(m.accept(100 + '1'));
}

}  // namespace
}  // namespace fc::grammar
