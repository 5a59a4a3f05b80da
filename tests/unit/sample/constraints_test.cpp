// GrammarConstraint in the sampler: random sampling over a toy vocabulary always yields output
// the constraint describes (checked with nlohmann's parser and by hand), choice outputs are
// exactly one choice, the Gemma 4 thought block is left unconstrained, and the constraint wins
// over min_tokens when together they would allow nothing (vLLM #53665).
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "grammar/compiler.h"
#include "sample/constraints.h"
#include "sample/sampler.h"

namespace fc {
namespace {

constexpr int32_t kEos = 0, kOpen = 1, kClose = 2;

struct Toy {
  std::vector<std::string> pieces;
  std::shared_ptr<grammar::ConstraintCompiler> cc;
};

Toy toy() {
  Toy t;
  t.pieces = {"<eos>", "<|channel>", "<channel|>", "{",      "}",        "[",    "]",    ":",
              ",",     "\"",         "\"a\"",      "\"bc",   "d\"",      " ",    "\n",   "1",
              "-",     "0.",         "5",          "e-",     "true",     "nul",  "l",    "{\"",
              "\":",   "}}",         "x",          "\\n",    "\\",       "\xc3", "\xa9", "\":\"",
              "\"}",   "]}",         "@",          "fals",   "e",        "Pa",   "ris",  "Paris",
              "Lon",   "don",        "P",          "\"n\":", "\"s\":\"", "a"};
  // Byte fallback: every byte is a token too (ids 46..301), as in the Gemma vocabulary.
  for (int b = 0; b < 256; ++b) t.pieces.push_back(std::string(1, static_cast<char>(b)));
  std::vector<uint8_t> special(t.pieces.size(), 0);
  special[0] = special[1] = special[2] = 1;
  auto vocab = std::make_shared<const grammar::Vocab>(t.pieces, special,
                                                      static_cast<int32_t>(t.pieces.size()));
  t.cc = std::make_shared<grammar::ConstraintCompiler>(
      vocab, [](const std::string&) { return -1; }, grammar::GemmaToolIds{});
  return t;
}

std::shared_ptr<const grammar::CompiledConstraint> compile(Toy& t, grammar::ConstraintSpec::Kind k,
                                                           const std::string& text) {
  grammar::ConstraintSpec s;
  s.kind = k;
  s.text = text;
  return t.cc->compile(s);
}

// Samples up to max_steps tokens at T=1 from noisy logits; returns (text, stopped).
std::pair<std::string, bool> run(Toy& t, std::shared_ptr<const grammar::CompiledConstraint> c,
                                 uint64_t seed, std::mt19937& rng, GrammarConstraintOptions o = {},
                                 int min_tokens = 0, int max_steps = 60) {
  SamplingParams p;
  p.seed = seed;
  p.min_tokens = min_tokens;
  p.min_tokens_stop_ids = {kEos};
  if (o.stop_ids.empty()) o.stop_ids = {kEos};
  p.make_constraint = [c, o] {
    return std::unique_ptr<TokenConstraint>(new GrammarConstraint(c, o));
  };
  const int32_t V = static_cast<int32_t>(t.pieces.size());
  SamplerState st(p, {}, V);
  SamplerScratch sc;
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::string out;
  for (int step = 0; step < max_steps; ++step) {
    std::vector<float> logits(static_cast<size_t>(V));
    for (float& l : logits) l = nd(rng);
    logits[kEos] += 1.5f;
    const int32_t tok = sample(logits, st, sc).token;
    st.accept(tok);
    if (tok == kEos) return {out, true};
    out += t.pieces[static_cast<size_t>(tok)];
  }
  return {out, false};
}

TEST(GrammarConstraint, SampledJsonSchemaOutputsValidate) {
  Toy t = toy();
  auto c = compile(t, grammar::ConstraintSpec::Kind::kJsonSchema,
                   R"({"type":"object","properties":{"n":{"type":"integer"},"s":{"type":"string"}},
                       "required":["n"],"additionalProperties":false})");
  std::mt19937 rng(5);
  int finished = 0;
  for (int trial = 0; trial < 200; ++trial) {
    auto [out, stopped] = run(t, c, static_cast<uint64_t>(trial), rng);
    if (!stopped) continue;
    ++finished;
    ASSERT_TRUE(nlohmann::json::accept(out)) << out;
    const auto j = nlohmann::json::parse(out);
    // JSON Schema counts 5.0 as an integer.
    ASSERT_TRUE(j.is_object() && j.contains("n") && j["n"].is_number() &&
                j["n"].get<double>() ==
                    static_cast<double>(static_cast<int64_t>(j["n"].get<double>())))
        << out;
    for (auto it = j.begin(); it != j.end(); ++it)
      EXPECT_TRUE(it.key() == "n" || it.key() == "s") << out;
  }
  EXPECT_GT(finished, 50);
}

TEST(GrammarConstraint, ChoiceOutputsAreExactlyOneChoice) {
  Toy t = toy();
  auto c = compile(t, grammar::ConstraintSpec::Kind::kChoice, R"(["Paris","London","Pa"])");
  std::mt19937 rng(3);
  std::map<std::string, int> seen;
  for (int trial = 0; trial < 200; ++trial) {
    auto [out, stopped] = run(t, c, static_cast<uint64_t>(trial), rng);
    ASSERT_TRUE(stopped) << out;
    ASSERT_TRUE(out == "Paris" || out == "London" || out == "Pa") << out;
    ++seen[out];
  }
  EXPECT_EQ(seen.size(), 3u);
}

TEST(GrammarConstraint, ThoughtBlockIsUnconstrained) {
  Toy t = toy();
  auto c = compile(t, grammar::ConstraintSpec::Kind::kChoice, R"(["Paris"])");
  GrammarConstraintOptions o;
  o.stop_ids = {kEos};
  o.thought_open = kOpen;
  o.thought_close = kClose;
  GrammarConstraint g(c, o);
  auto allowed = [&](int32_t tok) {
    return ((g.row()[static_cast<size_t>(tok) >> 5] >> (tok & 31)) & 1) != 0;
  };
  EXPECT_TRUE(allowed(kOpen));  // a thought block may come first
  EXPECT_TRUE(allowed(37));     // "Pa"
  EXPECT_FALSE(allowed(26));    // "x"
  const int32_t draft[] = {kOpen, 26, 34, kClose, 37, 38, kEos, 26};
  EXPECT_EQ(g.valid_prefix(draft), 7u);  // free inside the block, then "Paris", then stop
  g.accept(kOpen);
  EXPECT_TRUE(g.row().empty());  // unconstrained
  g.accept(26);
  g.accept(kClose);
  EXPECT_FALSE(allowed(kOpen));
  EXPECT_TRUE(allowed(39));  // "Paris"
  EXPECT_FALSE(allowed(kEos));
  g.accept(39);
  EXPECT_TRUE(allowed(kEos));
  EXPECT_FALSE(g.violated());
}

TEST(GrammarConstraint, WinsOverMinTokensWhenNothingElseIsLeft) {
  Toy t = toy();
  auto c = compile(t, grammar::ConstraintSpec::Kind::kJsonSchema, R"({"type":"boolean"})");
  std::mt19937 rng(9);
  for (int trial = 0; trial < 20; ++trial) {
    auto [out, stopped] = run(t, c, static_cast<uint64_t>(trial), rng, {}, /*min_tokens=*/64);
    EXPECT_TRUE(stopped) << out;
    EXPECT_TRUE(out == "true" || out == "false") << out;
  }
}

}  // namespace
}  // namespace fc
