// core/json_limits.h: nesting is bounded while parsing, so a 10^6-deep document is refused with
// a named error before any value is built (and without using the stack for it).
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/json_limits.h"

namespace fc {
namespace {

std::string arrays(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

std::string objects(size_t depth) {
  std::string s;
  for (size_t i = 0; i < depth; ++i) s += "{\"k\":";
  s += "0";
  s += std::string(depth, '}');
  return s;
}

std::string error_of(const std::string& text, int max_depth = kMaxJsonFileDepth) {
  try {
    parse_json_bounded(text, "f.json", max_depth);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(JsonLimits, DepthUpToTheLimitParses) {
  EXPECT_EQ(parse_json_bounded(arrays(256), "f.json").dump(), arrays(256));
  EXPECT_EQ(parse_json_bounded(objects(256), "f.json").dump(), objects(256));
  EXPECT_EQ(parse_json_bounded("[[1]]", "f.json", 2).dump(), "[[1]]");
  EXPECT_EQ(parse_json_bounded("7", "f.json", 0).dump(), "7");  // scalars have no depth
  EXPECT_TRUE(parse_ordered_json_bounded("{\"b\":1,\"a\":[2]}", "f.json").is_object());
}

TEST(JsonLimits, DeeperIsANamedError) {
  for (size_t depth : {257ul, 100'000ul, 1'000'000ul}) {
    EXPECT_EQ(error_of(arrays(depth)), "f.json: JSON nesting deeper than 256 levels") << depth;
    EXPECT_EQ(error_of(objects(depth)), "f.json: JSON nesting deeper than 256 levels") << depth;
  }
  EXPECT_EQ(error_of("[[1]]", 1), "f.json: JSON nesting deeper than 1 levels");
  // Unterminated deep text stops at the limit too, not at the end of input.
  EXPECT_EQ(error_of(std::string(1'000'000, '[')), "f.json: JSON nesting deeper than 256 levels");
}

TEST(JsonLimits, MalformedIsANamedError) {
  const std::string e = error_of("{\"a\": }");
  EXPECT_EQ(e.rfind("f.json: invalid JSON: ", 0), 0u) << e;
  EXPECT_NE(error_of("").find("f.json: invalid JSON"), std::string::npos);
}

TEST(JsonLimits, Files) {
  try {
    read_json_file_bounded("/nonexistent/x.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "/nonexistent/x.json: cannot open");
  }
  const nlohmann::json j =
      read_json_file_bounded(std::string(FC_SOURCE_DIR) + "/models/tiny-gemma4/config.json");
  EXPECT_EQ(j["model_type"], "gemma4_text");
}

}  // namespace
}  // namespace fc
