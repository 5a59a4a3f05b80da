// The grammar engine without a vocabulary: regex, GBNF/Lark, choice and JSON Schema compile to
// grammars that accept exactly the strings they should (checked string by string through the
// Matcher), and bad input is refused with an error naming the problem.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "grammar/automaton.h"
#include "grammar/ebnf.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/regex.h"

namespace fc::grammar {
namespace {

std::shared_ptr<const CompiledGrammar> regex_grammar(const std::string& re, bool search = false) {
  Grammar g;
  const int32_t r = g.add_rule("root");
  RegexOptions o;
  o.search = search;
  g.define(r, parse_regex(g, re, o));
  g.root = r;
  return std::make_shared<const CompiledGrammar>(compile_grammar(g));
}

bool matches(const std::shared_ptr<const CompiledGrammar>& g, const std::string& s) {
  Matcher m(g);
  return m.accept_bytes(s) && m.can_end();
}

std::shared_ptr<const CompiledGrammar> schema_grammar(const std::string& schema,
                                                      JsonSchemaOptions o = {}) {
  Grammar g;
  o.strict = true;
  g.root = add_json_schema(g, nlohmann::ordered_json::parse(schema), o, nullptr);
  return std::make_shared<const CompiledGrammar>(compile_grammar(g));
}

TEST(Regex, FullMatch) {
  auto g = regex_grammar("(ab|c)+[0-9]{2,3}x?");
  EXPECT_TRUE(matches(g, "ab12"));
  EXPECT_TRUE(matches(g, "cabc123x"));
  EXPECT_FALSE(matches(g, "ab1"));
  EXPECT_FALSE(matches(g, "12"));
  EXPECT_FALSE(matches(g, "ab1234"));
  auto u = regex_grammar("[^a]é.\\d");
  EXPECT_TRUE(matches(u,
                      "bé\xe4\xb8\xad"
                      "7"));
  EXPECT_FALSE(matches(u, "aéx7"));
  EXPECT_FALSE(matches(u, "bé\n7"));
}

TEST(Regex, SearchSemanticsAndAnchors) {
  auto g = regex_grammar("b+c", true);
  EXPECT_TRUE(matches(g, "xxbbcyy"));
  EXPECT_FALSE(matches(g, "xxcyy"));
  auto a = regex_grammar("^ab$|^x", true);
  EXPECT_TRUE(matches(a, "ab"));
  EXPECT_TRUE(matches(a, "xyz"));
  EXPECT_FALSE(matches(a, "zab"));
}

TEST(Regex, RefusesWhatItCannotEnforce) {
  for (const char* bad : {"(?=a)b", "(a)\\1", "\\bword", "a++", "\\p{L}", "(abc", "abc)", "[a-"})
    EXPECT_THROW(regex_grammar(bad), Error) << bad;
}

TEST(Gbnf, RecursionRepeatsAndClasses) {
  Grammar g;
  GrammarTextOptions o;
  parse_gbnf(g, R"X(
    # balanced parentheses with digits
    root ::= expr
    expr ::= term ("+" term)*
    term ::= [0-9]{1,3} | "(" expr ")"
  )X",
             o);
  auto cg = std::make_shared<const CompiledGrammar>(compile_grammar(g));
  EXPECT_TRUE(matches(cg, "1+(22+(333))"));
  EXPECT_FALSE(matches(cg, "1+(22"));
  EXPECT_FALSE(matches(cg, "1234"));
}

TEST(Gbnf, ErrorsNameTheProblem) {
  GrammarTextOptions o;
  auto err = [&](const std::string& text) {
    try {
      Grammar g;
      parse_gbnf(g, text, o);
      compile_grammar(g);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(err("root ::= a").find("'a' is not defined"), std::string::npos);
  EXPECT_NE(err("root ::= root \"x\" | \"y\"").find("left recursion"), std::string::npos);
  EXPECT_NE(err("start ::= \"x\"").find("root"), std::string::npos);
  EXPECT_NE(err("root ::= \"x").find("unterminated"), std::string::npos);
}

TEST(Lark, RulesTerminalsAndImports) {
  Grammar g;
  GrammarTextOptions o;
  parse_lark(g, R"X(
    %import common.INT
    start: pair ("," pair)*
    pair: KEY "=" (INT | /[a-z]+/) [ "!" ]
    KEY: /[A-Z][A-Z0-9_]*/
  )X",
             o);
  auto cg = std::make_shared<const CompiledGrammar>(compile_grammar(g));
  EXPECT_TRUE(matches(cg, "A=1,B_2=xyz!"));
  EXPECT_FALSE(matches(cg, "a=1"));
  EXPECT_FALSE(matches(cg, "A="));
  Grammar bad;
  EXPECT_THROW(parse_lark(bad, "start: WS\n%ignore WS", o), Error);
}

TEST(JsonSchema, ObjectsInPropertyOrderWithRequired) {
  auto g = schema_grammar(R"X({"type":"object","properties":{
      "a":{"type":"integer","minimum":-5,"maximum":120},
      "b":{"type":"string","maxLength":3},
      "c":{"type":"array","items":{"type":"boolean"},"minItems":1,"maxItems":2}},
      "required":["b"],"additionalProperties":false})X");
  EXPECT_TRUE(matches(g, R"X({"b":"xyz"})X"));
  EXPECT_TRUE(matches(g, R"X({"a":-5,"b":"","c":[true,false]})X"));
  EXPECT_TRUE(matches(g, "{\n  \"a\": 120,\n  \"b\": \"\\u00e9\"\n}"));
  EXPECT_FALSE(matches(g, R"X({"a":1})X"));            // b required
  EXPECT_FALSE(matches(g, R"X({"b":"abcd"})X"));       // maxLength
  EXPECT_FALSE(matches(g, R"X({"a":121,"b":"x"})X"));  // maximum
  EXPECT_FALSE(matches(g, R"X({"a":-6,"b":"x"})X"));   // minimum
  EXPECT_FALSE(matches(g, R"X({"b":"x","c":[]})X"));   // minItems
  EXPECT_FALSE(matches(g, R"X({"b":"x","d":1})X"));    // additionalProperties false
  EXPECT_FALSE(matches(g, R"X( {"b":"x"})X"));         // no leading whitespace
}

TEST(JsonSchema, AdditionalPropertiesRefsAndUnions) {
  auto g = schema_grammar(R"X({"$defs":{"node":{"type":"object","properties":{
      "v":{"type":["integer","null"]},"next":{"$ref":"#/$defs/node"}},"additionalProperties":false}},
      "anyOf":[{"$ref":"#/$defs/node"},{"type":"string","format":"date"}]})X");
  EXPECT_TRUE(matches(g, R"X({"v":1,"next":{"v":null,"next":{}}})X"));
  EXPECT_TRUE(matches(g, R"X("2024-02-29")X"));
  EXPECT_FALSE(matches(g, R"X("2024-13-01")X"));
  EXPECT_FALSE(matches(g, R"X("2024-04-31")X"));  // April has 30 days (llguidance oracle)
  EXPECT_TRUE(matches(g, R"X("2024-12-31")X"));
  EXPECT_FALSE(matches(g, R"X("2024-02-30")X"));
  EXPECT_FALSE(matches(g, R"X({"v":1.5})X"));
  auto open = schema_grammar(R"X({"type":"object","properties":{"a":{"const":1}},
      "additionalProperties":{"type":"number"}})X");
  EXPECT_TRUE(matches(open, R"X({"a":1,"ab":2.5,"x":-1e3})X"));
  EXPECT_TRUE(matches(open, R"X({"zz":0})X"));
  EXPECT_FALSE(matches(open, R"X({"a":1,"a":2})X"));  // "a" again is not an additional property
  EXPECT_FALSE(matches(open, R"X({"a":1,"b":"s"})X"));
  // The empty name is a JSON key like any other (found by the llguidance oracle).
  EXPECT_TRUE(matches(open, R"X({"":1})X"));
  EXPECT_TRUE(matches(open, R"X({"a":1,"":2})X"));
  auto any = schema_grammar(R"X({"type":"object"})X");
  EXPECT_TRUE(matches(any, R"X({"":"v"})X"));
  auto empty_listed = schema_grammar(R"X({"type":"object","properties":{"":{"const":1}},
      "additionalProperties":{"type":"number"}})X");
  EXPECT_TRUE(matches(empty_listed, R"X({"":1,"b":2})X"));
  EXPECT_FALSE(matches(empty_listed, R"X({"":1,"":2})X"));  // "" is listed, not additional
}

TEST(JsonSchema, NumbersWithExactBounds) {
  auto g = schema_grammar(R"X({"type":"number","exclusiveMinimum":-2,"maximum":10})X");
  for (const char* ok : {"-1.99", "0", "10", "10.000", "9.5", "-0.5", "3e0x"}) {
    const bool expect = std::string(ok) != "3e0x";
    EXPECT_EQ(matches(g, ok), expect) << ok;
  }
  for (const char* bad : {"-2", "-2.0", "10.01", "11", "-3"}) EXPECT_FALSE(matches(g, bad)) << bad;
  EXPECT_TRUE(matches(g, "-2.001") == false);
}

TEST(JsonSchema, UnsupportedKeywordsAreNamed) {
  try {
    schema_grammar(R"X({"type":"array","uniqueItems":true})X");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("uniqueItems"), std::string::npos) << e.what();
  }
  Grammar g;
  std::vector<std::string> warnings;
  JsonSchemaOptions o;  // not strict: ignored with a warning
  add_json_schema(g, nlohmann::ordered_json::parse(R"X({"type":"integer","multipleOf":3})X"), o,
                  &warnings);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("multipleOf"), std::string::npos);
}

TEST(JsonSchema, WhitespaceIsBounded) {
  auto g = schema_grammar(R"X({"type":"object"})X");
  EXPECT_TRUE(matches(g, "{ }"));
  EXPECT_TRUE(matches(g, "{\n" + std::string(16, ' ') + "}"));
  EXPECT_FALSE(matches(g, "{" + std::string(3, ' ') + "}"));  // two gaps of one space at most
  EXPECT_FALSE(matches(g, "{\n" + std::string(40, ' ') + "}"));
  JsonSchemaOptions compact;
  compact.any_whitespace = false;
  auto c = schema_grammar(R"X({"type":"object","properties":{"a":{}}})X", compact);
  EXPECT_TRUE(matches(c, R"X({"a":[1,{"b":null}]})X"));
  EXPECT_FALSE(matches(c, R"X({"a": 1})X"));
}

}  // namespace
}  // namespace fc::grammar
