// A Grammar compiled for matching: every rule becomes a deterministic automaton over byte
// classes whose states may also call rules (push, then continue at a return state when the
// callee accepts) and take special tokens. Matching (matcher.h) keeps a set of stacks of these
// states, i.e. a pushdown automaton; rules without calls ("leaf" rules: strings, numbers,
// whitespace, regex lexemes) are plain DFAs, which the mask cache (mask.h) walks fastest and
// shares between grammars (rule_key identifies a leaf's DFA whatever grammar it came from).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "grammar/ir.h"

namespace fc::grammar {

struct Call {
  int32_t rule = -1;
  int32_t ret = -1;  // state of the caller once the callee accepted
};

struct SpecialEdge {
  int32_t token = -1;
  int32_t next = -1;
};

enum StateFlag : uint8_t { kAccept = 1, kHasBytes = 2, kHasSpecial = 4, kHasCalls = 8 };

struct CompiledGrammar {
  int32_t num_states = 0;
  int32_t num_classes = 0;
  std::array<uint8_t, 256> byte_class{};  // byte -> class
  std::vector<int32_t> next;              // [state * num_classes + class] -> state, or -1
  std::vector<uint32_t> call_off;         // [num_states + 1] into calls
  std::vector<Call> calls;
  std::vector<uint32_t> special_off;  // [num_states + 1] into specials
  std::vector<SpecialEdge> specials;
  std::vector<uint8_t> flags;       // StateFlag bits per state
  std::vector<int32_t> state_rule;  // rule of each state
  std::vector<int32_t> rule_start;  // start state of each rule (-1: rule matches nothing)
  std::vector<int32_t> rule_first;  // the states of rule r are [rule_first[r], rule_first[r+1])
  std::vector<uint8_t> rule_leaf;   // no state of the rule calls a rule
  std::vector<std::array<uint64_t, 2>> rule_key;  // leaf rules: hash of the DFA over bytes
  std::vector<std::string> rule_names;
  std::vector<int32_t> special_tokens;  // every token id some edge takes (sorted)
  int32_t root_rule = 0;

  int32_t step(int32_t s, uint8_t b) const {
    return next[static_cast<size_t>(s) * static_cast<size_t>(num_classes) + byte_class[b]];
  }
  bool accepting(int32_t s) const { return flags[static_cast<size_t>(s)] & kAccept; }
  size_t bytes_used() const;
};

// Throws fc::Error naming the problem: an undefined rule, left recursion (a rule that can call
// itself before reading a byte), a grammar that matches nothing, or a size limit.
CompiledGrammar compile_grammar(const Grammar& g);

}  // namespace fc::grammar
