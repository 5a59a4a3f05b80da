// Regular expressions (the ECMAScript/PCRE subset JSON Schema `pattern`, vLLM's `regex` and
// Lark terminals use) parsed into the grammar IR. Characters go through an emitter, so the same
// pattern can match raw UTF-8 text or the JSON-escaped text of a string value.
//
// Supported: literals, `.`, classes `[...]` with ranges, negation and \d \w \s \D \W \S inside,
// escapes \n \r \t \f \v \0 \xHH \uHHHH \u{H...} and escaped punctuation, groups `( )` `(?: )`
// `(?<name> )` `(?P<name> )`, `|`, quantifiers * + ? {n} {n,} {n,m} (lazy forms match the same
// language), and `^`/`$` at the ends of top-level alternatives. Refused with an error naming the
// construct and its offset: lookarounds, backreferences, word boundaries, \p{..} classes,
// possessive quantifiers, inline flags.
#pragma once

#include <functional>
#include <string_view>

#include "grammar/ir.h"

namespace fc::grammar {

using CharEmitter = std::function<int32_t(Grammar&, const CharRanges&)>;

// Raw UTF-8: Grammar::chars.
CharEmitter raw_chars();

struct RegexOptions {
  // true: JSON Schema `pattern` semantics (a match anywhere unless anchored with ^ / $);
  // false: the whole text must match (^ and $ at the ends are allowed and change nothing).
  bool search = false;
  CharEmitter emit;  // default raw_chars()
};

int32_t parse_regex(Grammar& g, std::string_view re, const RegexOptions& o);

// The code points of a class escape letter (d w s D W S); empty for other letters.
CharRanges class_escape(char c);

}  // namespace fc::grammar
