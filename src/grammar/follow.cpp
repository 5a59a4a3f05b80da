#include "grammar/follow.h"

namespace fc::grammar {
namespace {

bool merge(ByteBits& into, const ByteBits& from) {
  bool grew = false;
  for (size_t w = 0; w < 4; ++w) {
    const uint64_t v = into[w] | from[w];
    grew = grew || v != into[w];
    into[w] = v;
  }
  return grew;
}

}  // namespace

std::vector<ByteBits> rule_follow_bytes(const CompiledGrammar& g) {
  const size_t S = static_cast<size_t>(g.num_states), C = static_cast<size_t>(g.num_classes);
  const size_t R = g.rule_start.size();
  std::vector<ByteBits> cls(C, ByteBits{});  // the bytes of each byte class
  for (int b = 0; b < 256; ++b)
    cls[g.byte_class[static_cast<size_t>(b)]][b >> 6] |= 1ull << (b & 63);
  std::vector<ByteBits> first(S, ByteBits{}), follow(R, ByteBits{});
  for (size_t x = 0; x < S; ++x) {
    if (!(g.flags[x] & kHasBytes)) continue;
    for (size_t c = 0; c < C; ++c)
      if (g.next[x * C + c] >= 0) merge(first[x], cls[c]);
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t x = 0; x < S; ++x) {
      const uint8_t fl = g.flags[x];
      if (fl & kAccept)
        changed = merge(first[x], follow[static_cast<size_t>(g.state_rule[x])]) || changed;
      if (!(fl & kHasCalls)) continue;
      for (uint32_t k = g.call_off[x]; k < g.call_off[x + 1]; ++k) {
        const Call& cl = g.calls[k];
        const int32_t start = g.rule_start[static_cast<size_t>(cl.rule)];
        if (start >= 0) changed = merge(first[x], first[static_cast<size_t>(start)]) || changed;
        changed = merge(follow[static_cast<size_t>(cl.rule)], first[static_cast<size_t>(cl.ret)]) ||
                  changed;
      }
    }
  }
  return follow;
}

}  // namespace fc::grammar
