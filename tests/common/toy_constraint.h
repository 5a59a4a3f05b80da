// A byte vocabulary for the 256-token fixture models, so their outputs can be constrained by
// real grammars in engine tests: ids 0-2 special (1 is the stop token), 3..255 text pieces:
// JSON punctuation, digits, letters, literals and a few multi-byte pieces.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "grammar/compiler.h"
#include "sample/constraints.h"

namespace fc::test {

inline std::shared_ptr<grammar::ConstraintCompiler> toy_compiler(int32_t vocab = 256) {
  const std::string alpha = "{}[]\":, 0123456789abcdefghijklmnopqrstuvwxyz-.\n";
  const std::vector<std::string> multi = {"\":", "\",", "{\"",   "\"}", "true", "false", "null",
                                          "12",  "ab",  "\":\"", "}]",  "x\"",  "yz",    "0.5"};
  std::vector<std::string> bytes(static_cast<size_t>(vocab));
  std::vector<uint8_t> special(static_cast<size_t>(vocab), 0);
  bytes[0] = "<pad>", bytes[1] = "<eos>", bytes[2] = "<bos>";
  special[0] = special[1] = special[2] = 1;
  for (int32_t t = 3; t < vocab; ++t) {
    const size_t i = static_cast<size_t>(t - 3);
    bytes[static_cast<size_t>(t)] =
        i < alpha.size() ? std::string(1, alpha[i])
        : (i % 3 == 0)   ? multi[i % multi.size()]
                         : std::string(1, alpha[(i * 7) % alpha.size()]) + alpha[i % alpha.size()];
  }
  auto v = std::make_shared<const grammar::Vocab>(bytes, special, vocab);
  return std::make_shared<grammar::ConstraintCompiler>(
      v, [](const std::string&) { return -1; }, grammar::GemmaToolIds{});
}

// make_constraint for SamplingParams: the spec compiled on the toy vocabulary, stop token 1.
inline std::function<std::unique_ptr<TokenConstraint>()> toy_constraint(
    grammar::ConstraintCompiler& cc, grammar::ConstraintSpec::Kind kind, const std::string& text) {
  grammar::ConstraintSpec s;
  s.kind = kind;
  s.text = text;
  auto c = cc.compile(s);
  return [c] {
    GrammarConstraintOptions o;
    o.stop_ids = {1};
    return std::unique_ptr<TokenConstraint>(new GrammarConstraint(c, o));
  };
}

}  // namespace fc::test
