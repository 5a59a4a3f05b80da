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
    cls[g.byte_class[static_cast<size_t>(b)]][static_cast<size_t>(b) >> 6] |= 1ull << (b & 63);
  std::vector<ByteBits> inner(S, ByteBits{}), follow(R, ByteBits{});
  std::vector<uint8_t> ends(S, 0);
  for (size_t x = 0; x < S; ++x) {
    ends[x] = g.flags[x] & kAccept ? 1 : 0;
    if (!(g.flags[x] & kHasBytes)) continue;
    for (size_t c = 0; c < C; ++c)
      if (g.next[x * C + c] >= 0) merge(inner[x], cls[c]);
  }
  // inner and ends: calls only (a rule's first bytes are inner(start), nullable is ends(start)).
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t x = S; x-- > 0;) {
      if (!(g.flags[x] & kHasCalls)) continue;
      for (uint32_t k = g.call_off[x]; k < g.call_off[x + 1]; ++k) {
        const Call& cl = g.calls[k];
        const int32_t start = g.rule_start[static_cast<size_t>(cl.rule)];
        if (start < 0) continue;
        const size_t st = static_cast<size_t>(start), ret = static_cast<size_t>(cl.ret);
        changed = merge(inner[x], inner[st]) || changed;
        if (ends[st]) {
          changed = merge(inner[x], inner[ret]) || changed;
          if (ends[ret] && !ends[x]) {
            ends[x] = 1;
            changed = true;
          }
        }
      }
    }
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t x = 0; x < S; ++x) {
      if (!(g.flags[x] & kHasCalls)) continue;
      const size_t caller = static_cast<size_t>(g.state_rule[x]);
      for (uint32_t k = g.call_off[x]; k < g.call_off[x + 1]; ++k) {
        const Call& cl = g.calls[k];
        const size_t callee = static_cast<size_t>(cl.rule), ret = static_cast<size_t>(cl.ret);
        changed = merge(follow[callee], inner[ret]) || changed;
        if (ends[ret]) changed = merge(follow[callee], follow[caller]) || changed;
      }
    }
  }
  return follow;
}

}  // namespace fc::grammar
