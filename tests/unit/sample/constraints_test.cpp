// JSON mode: JsonMachine against hand-picked valid and invalid documents, byte by byte; and
// JsonObjectConstraint driving random sampling over a toy vocabulary: every finished output
// parses as a JSON object (nlohmann's parser as the reference).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "sample/constraints.h"
#include "sample/sampler.h"

namespace fc {
namespace {

// Feeds s; returns the number of bytes accepted (s.size() when all were).
size_t accepted(JsonMachine& m, const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (!m.feed(static_cast<uint8_t>(s[i]))) return i;
  return s.size();
}

TEST(JsonMachine, AcceptsValidObjects) {
  for (const std::string doc : {
           R"({})",
           R"({"a":1})",
           R"({ "a" : [1, -2.5e+3, 0, 0.25, 1E9, true, false, null], "b": {"c": {}}, "d": []})",
           R"({"s":"esc \" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE00"})",
           "{\"utf8\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}",
           "{\n  \"k\": [\n    {\"x\": -0}\n  ]\n}",
       }) {
    JsonMachine m;
    EXPECT_EQ(accepted(m, doc), doc.size()) << doc;
    EXPECT_TRUE(m.complete()) << doc;
    EXPECT_TRUE(nlohmann::json::accept(doc)) << doc;  // the reference agrees
  }
}

TEST(JsonMachine, RefusesWhereTheSyntaxEnds) {
  // (document, bytes accepted before the first refused one)
  const std::vector<std::pair<std::string, size_t>> cases = {
      {" {}", 0},               // the output starts with the object
      {"[1]", 0},               // an object, not any value
      {"{\"a\":01}", 6},        // no leading zeros
      {"{\"a\":1.}", 7},        // a digit after the point
      {"{\"a\":1,}", 7},        // no trailing comma
      {"{a:1}", 1},             // keys are strings
      {"{\"a\" 1}", 5},         // the colon
      {"{\"a\":tru}", 8},       // literals spelled out
      {"{\"a\":\"x\ny\"}", 7},  // raw control characters in strings
      {"{\"a\":\"\\x\"}", 7},   // unknown escape
      {"{\"a\":\"\\u12g4\"}", 10},
      {"{} ", 2},  // nothing after the object
      {"{}}", 2},
      {"{\"a\":\"\xff\"}", 6},  // not a UTF-8 lead byte
  };
  for (const auto& [doc, n] : cases) {
    JsonMachine m;
    EXPECT_EQ(accepted(m, doc), n) << doc;
  }
  // Whitespace runs are capped (no endless spaces).
  JsonMachine m;
  ASSERT_TRUE(m.feed('{'));
  for (int i = 0; i < JsonMachine::kMaxSpaceRun; ++i) ASSERT_TRUE(m.feed(' '));
  EXPECT_FALSE(m.feed(' '));
  EXPECT_TRUE(m.feed('}'));
  EXPECT_TRUE(m.complete());
  // Nesting is capped.
  JsonMachine d;
  std::string deep = "{\"a\":";
  for (int i = 1; i < JsonMachine::kMaxDepth; ++i) deep += "[";
  EXPECT_EQ(accepted(d, deep + "["), deep.size());
}

TEST(JsonObjectConstraint, RandomSamplingAlwaysGivesAnObject) {
  // A toy vocabulary with multi-byte tokens, pieces that are invalid anywhere, and a special
  // stop token (id 0).
  auto vocab = std::make_shared<TokenBytes>();
  const std::vector<std::string> pieces = {
      "<eos>", "{",  "}", "[",   "]",  ":",    ",",    "\"",    "\"a\"", "\"bc", "d\"",
      " ",     "\n", "1", "-",   "0.", "5",    "e-",   "true",  "nul",   "l",    "{\"",
      "\":",   "}}", "x", "\\n", "\\", "\xc3", "\xa9", "\":\"", "\"}",   "]}",   "@"};
  for (const std::string& p : pieces) {
    vocab->bytes.push_back(p);
    vocab->special.push_back(p == "<eos>");
  }
  index_token_bytes(*vocab);
  EXPECT_TRUE(vocab->string_safe[20]);   // "l"
  EXPECT_FALSE(vocab->string_safe[7]);   // "\""
  EXPECT_FALSE(vocab->string_safe[27]);  // a lone UTF-8 lead byte
  EXPECT_FALSE(vocab->string_safe[0]);   // special
  const int32_t V = static_cast<int32_t>(pieces.size());
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  int finished = 0;
  for (int trial = 0; trial < 300; ++trial) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = static_cast<uint64_t>(trial);
    p.make_constraint = [vocab] {
      return std::unique_ptr<TokenConstraint>(new JsonObjectConstraint(vocab, {0}));
    };
    SamplerState st(p, {}, V);
    SamplerScratch sc;
    std::string out;
    for (int step = 0; step < 200; ++step) {
      std::vector<float> logits(static_cast<size_t>(V));
      for (float& l : logits) l = nd(rng);
      logits[0] += 1.0f;  // the stop token, so many outputs end
      const int32_t t = sample(logits, st, sc).token;
      st.accept(t);
      if (t == 0) break;
      out += pieces[static_cast<size_t>(t)];
    }
    JsonMachine check;
    ASSERT_EQ(accepted(check, out), out.size()) << out;  // always a valid prefix
    if (check.complete()) {
      ++finished;
      // The reference's syntax check (its full parse also refuses numbers beyond double range,
      // which JSON syntax allows and JSON mode does not police).
      EXPECT_TRUE(nlohmann::json::accept(out)) << out;
      EXPECT_EQ(out.front(), '{') << out;
    }
  }
  EXPECT_GT(finished, 100);
}

TEST(ChoiceConstraint, OutputIsExactlyOneChoice) {
  auto vocab = std::make_shared<TokenBytes>();
  const std::vector<std::string> pieces = {"<eos>", "Pa", "ris", "Paris", "Lon", "don",    "P",
                                           "x",     " ",  "a",   "r",     "is",  "London!"};
  for (const std::string& p : pieces) {
    vocab->bytes.push_back(p);
    vocab->special.push_back(p == "<eos>");
  }
  const int32_t V = static_cast<int32_t>(pieces.size());
  const std::vector<std::string> choices = {"Paris", "London", "Par"};
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::map<std::string, int> seen;
  for (int trial = 0; trial < 300; ++trial) {
    SamplingParams p;
    p.seed = static_cast<uint64_t>(trial);
    p.make_constraint = [&] {
      return std::unique_ptr<TokenConstraint>(new ChoiceConstraint(vocab, choices, {0}));
    };
    SamplerState st(p, {}, V);
    SamplerScratch sc;
    std::string out;
    bool stopped = false;
    for (int step = 0; step < 10 && !stopped; ++step) {
      std::vector<float> logits(static_cast<size_t>(V));
      for (float& l : logits) l = nd(rng);
      const int32_t t = sample(logits, st, sc).token;
      st.accept(t);
      if (t == 0) {
        stopped = true;
      } else {
        out += pieces[static_cast<size_t>(t)];
      }
    }
    ASSERT_TRUE(stopped) << out;  // every choice is reachable and ends
    ASSERT_TRUE(std::find(choices.begin(), choices.end(), out) != choices.end()) << out;
    ++seen[out];
  }
  EXPECT_EQ(seen.size(), 3u);  // "Par" is a prefix of "Paris": both reachable
}

}  // namespace
}  // namespace fc
