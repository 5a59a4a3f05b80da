// The grammar IR every constraint kind compiles to (JSON Schema, regex, GBNF/EBNF, Lark, choice,
// Gemma 4 tool calls): a set of named rules over BYTES. A rule's body is an expression tree of
// byte sets, sequences, alternatives, bounded repeats, references to rules (recursion) and
// special tokens (one token id, matched only by that token, never by text). Unicode is lowered
// to UTF-8 byte sequences here (utf8_ranges), so matching, masks and partial UTF-8 in
// byte-fallback tokens are all plain byte operations.
#pragma once

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fc::grammar {

using ByteSet = std::bitset<256>;
// Sorted, disjoint, inclusive code point ranges.
using CharRanges = std::vector<std::pair<char32_t, char32_t>>;

enum class Op : uint8_t {
  kEmpty,    // matches ""
  kNothing,  // matches no string
  kBytes,    // one byte from `bytes`
  kSeq,      // kids in order
  kAlt,      // one of kids
  kRepeat,   // kids[0] between min and max times (max -1: unbounded)
  kRef,      // rule `ref`
  kSpecial,  // the special token id `ref`
};

struct Node {
  Op op = Op::kEmpty;
  ByteSet bytes;
  std::vector<int32_t> kids;
  int32_t min = 0, max = -1;
  int32_t ref = -1;
};

struct Rule {
  std::string name;
  int32_t body = -1;  // node index; -1 until defined
};

// Size bounds for building and compiling (every input path is bounded).
struct Limits {
  int64_t max_nodes = 2'000'000;       // IR nodes
  int64_t max_nfa_states = 2'000'000;  // Thompson states over all rules
  int64_t max_dfa_states = 200'000;    // compiled states over all rules
  int max_repeat = 10'000;             // largest finite repeat bound
};

class Grammar {
 public:
  int32_t empty();
  int32_t nothing();
  int32_t bytes(const ByteSet& s);  // nothing() for an empty set
  int32_t byte(uint8_t b);
  int32_t byte_range(uint8_t lo, uint8_t hi);
  int32_t literal(std::string_view s);  // the bytes of s in order
  int32_t seq(std::vector<int32_t> kids);
  int32_t alt(std::vector<int32_t> kids);
  int32_t repeat(int32_t x, int32_t min, int32_t max);  // max -1: unbounded
  int32_t star(int32_t x) { return repeat(x, 0, -1); }
  int32_t plus(int32_t x) { return repeat(x, 1, -1); }
  int32_t opt(int32_t x) { return repeat(x, 0, 1); }
  int32_t ref(int32_t rule);
  int32_t special(int32_t token);
  // Any one UTF-8 encoded code point in `ranges` (surrogates never match).
  int32_t chars(const CharRanges& ranges);
  int32_t any_char();  // any code point except surrogates

  // A new rule (names must be unique; an existing name throws).
  int32_t add_rule(const std::string& name);
  int32_t rule(const std::string& name) const;  // -1 when absent
  void define(int32_t rule, int32_t body);
  // A fresh unique name starting with `stem`.
  std::string fresh_name(const std::string& stem) const;

  void set_limits(const Limits& l) { limits_ = l; }
  const Limits& limits() const { return limits_; }

  // GBNF-like text of every rule (fourcast constrain --print-grammar).
  std::string to_string() const;

  std::vector<Node> nodes;
  std::vector<Rule> rules;
  int32_t root = -1;  // rule index

 private:
  int32_t add(Node n);
  Limits limits_;
};

// Code point set helpers.
CharRanges normalize_ranges(CharRanges r);
CharRanges complement_ranges(const CharRanges& r);  // within [0, 0x10FFFF]
CharRanges subtract_ranges(const CharRanges& a, const CharRanges& b);

}  // namespace fc::grammar
