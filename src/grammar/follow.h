// FOLLOW byte sets of a compiled grammar's rules: for rule R, a superset of the bytes that can
// come first after R ends, whatever the stack below it. The mask cache (mask.h) drops, at
// precompute time, the uncertain tokens whose bytes after R's end start outside FOLLOW(R):
// no parent stack could take them (e.g. "1000" at an integer bounded by 500, with an integer
// ending only before `,` `}` `]` or whitespace), so they never need a walk at mask time.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "grammar/automaton.h"

namespace fc::grammar {

// 256 bits, bit b of word b/64 = byte b.
using ByteBits = std::array<uint64_t, 4>;

inline bool has_byte(const ByteBits& s, uint8_t b) {
  return (s[b >> 6] >> (b & 63)) & 1;
}

// One set per rule (rule order). Per state x, inner(x) is the bytes x's rule may read next
// before it ends (x's own byte edges; for each call, the callee's first bytes and, when the
// callee can match nothing, inner(return state)) and ends(x) whether the rule can end from x
// without a byte. FOLLOW(R) is, over R's call sites q -> (R, ret), inner(ret) plus
// FOLLOW(rule of q) when ends(ret). Calls through a nullable rule thus see their own context
// only (a whitespace gap called before every value does not make every value start "follow"
// every number). Least fixpoint of those equations (every term only grows), so the sets are
// supersets of what any stack can do, which is what exactness needs.
std::vector<ByteBits> rule_follow_bytes(const CompiledGrammar& g);

}  // namespace fc::grammar
