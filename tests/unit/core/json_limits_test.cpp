// Depth-bounded JSON parsing: the limit holds while parsing (documents far deeper than the stack
// could take in a recursive copy are refused without touching it), the result equals
// nlohmann's own parse below the limit, and errors say what and where.
#include "core/json_limits.h"

#include <gtest/gtest.h>

#include <string>

namespace fc {
namespace {

std::string nested(int depth, const std::string& open, const std::string& close,
                   const std::string& leaf = "1") {
  std::string s;
  s.reserve(static_cast<size_t>(depth) * (open.size() + close.size()) + leaf.size());
  for (int i = 0; i < depth; ++i) s += open;
  s += leaf;
  for (int i = 0; i < depth; ++i) s += close;
  return s;
}

TEST(JsonLimits, SameResultAsNlohmannWithinTheLimit) {
  const std::string text =
      R"({"b": [1, 2.5, -3, 18446744073709551615, "x\u00e9", null, true, {"z": {}}], "a": []})";
  EXPECT_EQ(parse_json(text), nlohmann::json::parse(text));
  const nlohmann::ordered_json o = parse_ordered_json(text);
  EXPECT_EQ(o, nlohmann::ordered_json::parse(text));
  EXPECT_EQ(o.begin().key(), "b");  // document order kept
  EXPECT_EQ(parse_json("  42 "), 42);
}

TEST(JsonLimits, DepthIsCountedAsDocumented) {
  EXPECT_EQ(json_depth(parse_json("1")), 0);
  EXPECT_EQ(json_depth(parse_json("[]")), 1);
  EXPECT_EQ(json_depth(parse_json(R"({"a": [[1], {"b": {}}]})")), 4);
  // Exactly at the limit parses; one more level does not.
  EXPECT_EQ(json_depth(parse_json(nested(5, "[", "]"), 5)), 5);
  EXPECT_THROW(parse_json(nested(6, "[", "]"), 5), JsonError);
  EXPECT_EQ(json_depth(parse_ordered_json(nested(5, "{\"k\":", "}"), 5)), 5);
  EXPECT_THROW(parse_ordered_json(nested(6, "{\"k\":", "}"), 5), JsonError);
}

TEST(JsonLimits, HostileDepthsAreRefusedWithTheLimitNamed) {
  // 10^6 levels: a recursive copy or dump of this would overflow any thread's stack.
  for (const auto& [open, close] :
       {std::pair<std::string, std::string>{"[", "]"}, {"{\"a\":", "}"}, {"[{\"a\":", "}]"}}) {
    const std::string text = nested(1'000'000, open, close);
    try {
      parse_json(text);
      FAIL() << "accepted";
    } catch (const JsonError& e) {
      EXPECT_EQ(e.kind(), JsonError::Kind::kTooDeep);
      EXPECT_NE(std::string(e.what()).find("256 levels (the limit)"), std::string::npos)
          << e.what();
      EXPECT_LT(e.byte(), 257 * open.size());  // stopped at the first level past the limit
    }
    EXPECT_THROW(parse_ordered_json(text), JsonError);
  }
  // Unclosed brackets (a truncated hostile body) are refused the same way.
  EXPECT_THROW(parse_json(std::string(100'000, '[')), JsonError);
  // Brackets inside strings do not count.
  const std::string in_string = "[\"" + std::string(10'000, '[') + "\"]";
  EXPECT_EQ(json_depth(parse_json(in_string)), 1);
}

TEST(JsonLimits, SyntaxErrorsSayWhere) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "[1] x", "'a'", "[1e999]", "\"\xff\""}) {
    try {
      parse_json(bad);
      FAIL() << "accepted " << bad;
    } catch (const JsonError& e) {
      EXPECT_EQ(e.kind(), JsonError::Kind::kSyntax) << bad;
      EXPECT_NE(std::string(e.what()).find("json.exception"), std::string::npos) << e.what();
    }
  }
  try {
    parse_json("[1, 2, }");
    FAIL();
  } catch (const JsonError& e) {
    EXPECT_GE(e.byte(), 7u);  // at the bad character
    EXPECT_NE(std::string(e.what()).find("column"), std::string::npos) << e.what();
  }
}

TEST(JsonLimits, DepthOfDeepValuesWithoutRecursion) {
  // Built in memory (not parsed): json_depth must not recurse either.
  nlohmann::json j = 1;
  for (int i = 0; i < 200'000; ++i) {
    nlohmann::json a = nlohmann::json::array();
    a.push_back(std::move(j));
    j = std::move(a);
  }
  EXPECT_EQ(json_depth(j), 200'000);
}

// Named sources (files, flags): the message starts with the name, the kind and byte stay.
std::string named_error(const std::string& text, int max_depth = kJsonMaxDepth) {
  try {
    parse_json(text, "f.json", max_depth);
  } catch (const JsonError& e) {
    return e.what();
  }
  return "";
}

TEST(JsonLimits, NamedSourcesNameThemselves) {
  EXPECT_EQ(parse_json(nested(256, "[", "]"), "f.json"), parse_json(nested(256, "[", "]")));
  EXPECT_EQ(parse_json("7", "f.json", 0), 7);  // scalars have no depth
  EXPECT_EQ(parse_ordered_json(R"({"b":1,"a":[2]})", "f.json").begin().key(), "b");
  for (int depth : {257, 100'000, 1'000'000}) {
    const std::string e = named_error(nested(depth, "{\"k\":", "}"));
    EXPECT_EQ(e.rfind("f.json: JSON nested deeper than 256 levels (the limit) at byte ", 0), 0u)
        << e;
  }
  EXPECT_EQ(named_error("[[1]]", 1),
            "f.json: JSON nested deeper than 1 levels (the limit) at byte 1");
  const std::string bad = named_error("{\"a\": }");
  EXPECT_EQ(bad.rfind("f.json: invalid JSON: [json.exception.parse_error", 0), 0u) << bad;
  EXPECT_EQ(named_error("").rfind("f.json: invalid JSON: ", 0), 0u);
  // Unterminated deep text stops at the limit, not at the end of the input.
  EXPECT_EQ(named_error(std::string(1'000'000, '[')),
            "f.json: JSON nested deeper than 256 levels (the limit) at byte 256");
  // Up to the limit, the value is the document itself.
  EXPECT_EQ(parse_json(nested(256, "{\"k\":", "}", "0"), "f.json").dump(),
            nested(256, "{\"k\":", "}", "0"));
  try {
    parse_ordered_json(std::string(100'000, '['), "--kwargs");
    FAIL();
  } catch (const JsonError& e) {
    EXPECT_EQ(e.kind(), JsonError::Kind::kTooDeep);
    EXPECT_EQ(e.byte(), 256u);
  }
}

TEST(JsonLimits, Files) {
  try {
    read_json_file("/nonexistent/x.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "/nonexistent/x.json: cannot open");
  }
  const nlohmann::json j =
      read_json_file(std::string(FC_SOURCE_DIR) + "/models/tiny-gemma4/config.json");
  EXPECT_EQ(j["model_type"], "gemma4_text");
  const nlohmann::ordered_json o =
      read_ordered_json_file(std::string(FC_SOURCE_DIR) + "/models/tiny-gemma4/config.json");
  EXPECT_EQ(o, nlohmann::ordered_json::parse(j.dump()));
}

}  // namespace
}  // namespace fc
