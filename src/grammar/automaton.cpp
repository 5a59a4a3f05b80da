// Grammar -> CompiledGrammar: byte classes, a Thompson NFA per rule, subset construction, then
// trimming of states that can never accept and the left-recursion check.
#include "grammar/automaton.h"

#include <algorithm>
#include <functional>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"

namespace fc::grammar {
namespace {

struct NfaEdge {
  enum Kind : uint8_t { kClasses, kCall, kSpecial };
  Kind kind = kClasses;
  ByteSet classes;   // kClasses: the byte classes taking the edge
  int32_t arg = -1;  // rule or token
  int32_t to = -1;
};

struct NfaState {
  std::vector<int32_t> eps;
  std::vector<NfaEdge> edges;
};

struct Nfa {
  std::vector<NfaState> states;
  int64_t* budget = nullptr;  // shared count of states over all rules
  int32_t add() {
    FC_CHECK(--*budget >= 0, "grammar: too large (more than the NFA state limit)");
    states.emplace_back();
    return static_cast<int32_t>(states.size() - 1);
  }
};

// Thompson construction with continuations: build(id, next) returns the entry state of an NFA
// for node `id` whose only exit is `next`. Such a fragment depends on (id, next) alone, so it is
// memoized: an IR node shared by several parents (the IR is a DAG: JSON Schema's whitespace,
// separators, an object's tail of optional members) is built once per continuation instead of
// once per use, which keeps the NFA (and the subsets of the DFA) linear in the IR.
class NfaBuilder {
 public:
  NfaBuilder(const Grammar& g, const std::array<uint8_t, 256>& byte_class, Nfa& nfa)
      : g_(g), byte_class_(byte_class), nfa_(nfa) {}

  int32_t build(int32_t id, int32_t next, int depth = 0) {
    FC_CHECK(depth < 2000, "grammar: expression nested too deeply");
    const uint64_t key =
        (static_cast<uint64_t>(static_cast<uint32_t>(id)) << 32) | static_cast<uint32_t>(next);
    auto it = memo_.find(key);
    if (it != memo_.end()) return it->second;
    const int32_t s = make(id, next, depth);
    memo_.emplace(key, s);
    return s;
  }

 private:
  NfaState& at(int32_t s) { return nfa_.states[static_cast<size_t>(s)]; }
  int32_t edge_state(NfaEdge e) {
    const int32_t a = nfa_.add();
    at(a).edges.push_back(e);
    return a;
  }

  int32_t make(int32_t id, int32_t next, int depth) {
    const Node& n = g_.nodes[static_cast<size_t>(id)];
    switch (n.op) {
      case Op::kEmpty:
        return next;
      case Op::kNothing:
        return nfa_.add();  // no way out
      case Op::kBytes: {
        NfaEdge e;
        for (int c = 0; c < 256; ++c)
          if (n.bytes.test(static_cast<size_t>(c)))
            e.classes.set(byte_class_[static_cast<size_t>(c)]);
        e.to = next;
        return edge_state(e);
      }
      case Op::kRef:
      case Op::kSpecial: {
        NfaEdge e;
        e.kind = n.op == Op::kRef ? NfaEdge::kCall : NfaEdge::kSpecial;
        e.arg = n.ref;
        e.to = next;
        return edge_state(e);
      }
      case Op::kSeq: {
        int32_t cur = next;
        for (size_t i = n.kids.size(); i-- > 0;) cur = build(n.kids[i], cur, depth + 1);
        return cur;
      }
      case Op::kAlt: {
        const int32_t a = nfa_.add();
        for (int32_t k : n.kids) {
          const int32_t in = build(k, next, depth + 1);
          at(a).eps.push_back(in);
        }
        return a;
      }
      case Op::kRepeat: {
        const int32_t kid = n.kids[0];
        int32_t cur;
        if (n.max == -1) {  // loop: L -> next | kid L
          const int32_t loop = nfa_.add();
          const int32_t body = build(kid, loop, depth + 1);
          at(loop).eps = {next, body};
          cur = loop;
        } else {  // optional copies: T_0 = next, T_j = kid T_(j-1) | next
          cur = next;
          for (int32_t j = n.min; j < n.max; ++j) {
            const int32_t t = nfa_.add();
            const int32_t body = build(kid, cur, depth + 1);
            at(t).eps = {body, next};
            cur = t;
          }
        }
        for (int32_t i = 0; i < n.min; ++i) cur = build(kid, cur, depth + 1);
        return cur;
      }
    }
    fail("grammar: unknown node");
  }

  const Grammar& g_;
  const std::array<uint8_t, 256>& byte_class_;
  Nfa& nfa_;
  std::unordered_map<uint64_t, int32_t> memo_;
};

struct VecHash {
  size_t operator()(const std::vector<int32_t>& v) const {
    uint64_t h = 1469598103934665603ull;
    for (int32_t x : v) h = (h ^ static_cast<uint32_t>(x)) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

// The per-rule DFA before it is placed in the global tables.
struct RuleDfa {
  std::vector<std::vector<int32_t>> next;  // [state][class]
  std::vector<std::vector<Call>> calls;
  std::vector<std::vector<SpecialEdge>> specials;
  std::vector<uint8_t> accept;
};

RuleDfa determinize(const Nfa& nfa, int32_t start, int32_t final_state, int num_classes,
                    int64_t& dfa_budget) {
  RuleDfa d;
  const size_t n = nfa.states.size();
  std::vector<uint32_t> mark(n, 0);
  uint32_t stamp = 0;
  auto close = [&](std::vector<int32_t> seeds) {
    ++stamp;
    std::vector<int32_t> out, stack = std::move(seeds);
    while (!stack.empty()) {
      const int32_t s = stack.back();
      stack.pop_back();
      if (mark[static_cast<size_t>(s)] == stamp) continue;
      mark[static_cast<size_t>(s)] = stamp;
      const NfaState& st = nfa.states[static_cast<size_t>(s)];
      // Keep only states that carry edges or are final: they alone decide the DFA state.
      if (!st.edges.empty() || s == final_state) out.push_back(s);
      for (int32_t e : st.eps) stack.push_back(e);
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  std::unordered_map<std::vector<int32_t>, int32_t, VecHash> ids;
  std::vector<std::vector<int32_t>> sets;
  auto intern = [&](std::vector<int32_t> set) -> int32_t {
    if (set.empty()) return -1;
    auto it = ids.find(set);
    if (it != ids.end()) return it->second;
    FC_CHECK(--dfa_budget >= 0, "grammar: too large (more than the compiled state limit)");
    const int32_t id = static_cast<int32_t>(sets.size());
    ids.emplace(set, id);
    sets.push_back(std::move(set));
    return id;
  };
  intern(close({start}));
  std::vector<std::vector<int32_t>> by_class(static_cast<size_t>(num_classes));
  for (size_t i = 0; i < sets.size(); ++i) {
    const std::vector<int32_t> set = sets[i];
    for (auto& v : by_class) v.clear();
    std::map<int32_t, std::vector<int32_t>> call_to, special_to;
    bool acc = false;
    for (int32_t s : set) {
      if (s == final_state) acc = true;
      for (const NfaEdge& e : nfa.states[static_cast<size_t>(s)].edges) {
        if (e.kind == NfaEdge::kClasses) {
          for (int c = 0; c < num_classes; ++c)
            if (e.classes.test(static_cast<size_t>(c)))
              by_class[static_cast<size_t>(c)].push_back(e.to);
        } else if (e.kind == NfaEdge::kCall) {
          call_to[e.arg].push_back(e.to);
        } else {
          special_to[e.arg].push_back(e.to);
        }
      }
    }
    std::vector<int32_t> row(static_cast<size_t>(num_classes), -1);
    std::unordered_map<std::vector<int32_t>, int32_t, VecHash> memo;  // same targets, same state
    for (int c = 0; c < num_classes; ++c) {
      auto& t = by_class[static_cast<size_t>(c)];
      if (t.empty()) continue;
      std::sort(t.begin(), t.end());
      t.erase(std::unique(t.begin(), t.end()), t.end());
      auto m = memo.find(t);
      if (m != memo.end()) {
        row[static_cast<size_t>(c)] = m->second;
        continue;
      }
      const int32_t id = intern(close(t));
      memo.emplace(t, id);
      row[static_cast<size_t>(c)] = id;
    }
    std::vector<Call> calls;
    for (auto& [r, t] : call_to) calls.push_back(Call{r, intern(close(t))});
    std::vector<SpecialEdge> sp;
    for (auto& [tok, t] : special_to) sp.push_back(SpecialEdge{tok, intern(close(t))});
    d.next.push_back(std::move(row));
    d.calls.push_back(std::move(calls));
    d.specials.push_back(std::move(sp));
    d.accept.push_back(acc);
  }
  return d;
}

uint64_t mix(uint64_t h, uint64_t x, uint64_t k) {
  h ^= x + k + (h << 6) + (h >> 2);
  return h * 0x9E3779B97F4A7C15ull;
}

}  // namespace

size_t CompiledGrammar::bytes_used() const {
  return next.size() * 4 + calls.size() * sizeof(Call) + specials.size() * sizeof(SpecialEdge) +
         flags.size() * 10 + call_off.size() * 8;
}

CompiledGrammar compile_grammar(const Grammar& g) {
  const Limits& lim = g.limits();
  FC_CHECK(g.root >= 0 && g.root < static_cast<int32_t>(g.rules.size()), "grammar: no root rule");
  for (const Rule& r : g.rules)
    FC_CHECK(r.body >= 0, "grammar: rule '", r.name, "' is not defined");
  for (const Node& n : g.nodes)
    if (n.op == Op::kRef)
      FC_CHECK(n.ref >= 0 && n.ref < static_cast<int32_t>(g.rules.size()),
               "grammar: reference to an unknown rule");

  CompiledGrammar cg;
  // Byte classes: the coarsest partition of 0..255 that every byte set respects.
  {
    std::array<int, 256> cls{};
    int ncls = 1;
    std::unordered_set<ByteSet> seen;  // each distinct set refines the partition once
    for (const Node& n : g.nodes) {
      if (n.op != Op::kBytes) continue;
      if (!seen.insert(n.bytes).second) continue;
      std::map<std::pair<int, bool>, int> remap;
      for (int b = 0; b < 256; ++b) {
        auto key =
            std::make_pair(cls[static_cast<size_t>(b)], n.bytes.test(static_cast<size_t>(b)));
        auto it = remap.find(key);
        if (it == remap.end()) it = remap.emplace(key, static_cast<int>(remap.size())).first;
        cls[static_cast<size_t>(b)] = it->second;
      }
      ncls = static_cast<int>(remap.size());
    }
    for (int b = 0; b < 256; ++b)
      cg.byte_class[static_cast<size_t>(b)] = static_cast<uint8_t>(cls[static_cast<size_t>(b)]);
    cg.num_classes = ncls;
  }

  int64_t nfa_budget = lim.max_nfa_states, dfa_budget = lim.max_dfa_states;
  std::vector<RuleDfa> dfas;
  for (const Rule& r : g.rules) {
    Nfa nfa;
    nfa.budget = &nfa_budget;
    NfaBuilder b(g, cg.byte_class, nfa);
    const int32_t final_state = nfa.add();
    const int32_t start = b.build(r.body, final_state);
    dfas.push_back(determinize(nfa, start, final_state, cg.num_classes, dfa_budget));
  }

  // Global numbering: the states of rule r are contiguous.
  const size_t R = g.rules.size();
  cg.rule_first.assign(R + 1, 0);
  for (size_t r = 0; r < R; ++r)
    cg.rule_first[r + 1] = cg.rule_first[r] + static_cast<int32_t>(dfas[r].accept.size());
  cg.num_states = cg.rule_first[R];
  const size_t S = static_cast<size_t>(cg.num_states), C = static_cast<size_t>(cg.num_classes);

  // Liveness: a state is live if it can reach acceptance of its rule; a rule is productive if
  // its start state is live. Fixpoint over calls.
  std::vector<uint8_t> live(S, 0), productive(R, 0);
  auto gid = [&](size_t r, int32_t local) { return cg.rule_first[r] + local; };
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < R; ++r) {
      const RuleDfa& d = dfas[r];
      // Descending: subset construction numbers successors after their predecessors, so one
      // pass settles most chains.
      for (size_t s = d.accept.size(); s-- > 0;) {
        const size_t id = static_cast<size_t>(gid(r, static_cast<int32_t>(s)));
        if (live[id]) continue;
        bool l = d.accept[s];
        for (size_t c = 0; !l && c < C; ++c) {
          const int32_t t = d.next[s][c];
          l = t >= 0 && live[static_cast<size_t>(gid(r, t))];
        }
        for (const SpecialEdge& e : d.specials[s])
          l = l || (e.next >= 0 && live[static_cast<size_t>(gid(r, e.next))]);
        for (const Call& c : d.calls[s])
          l = l || (productive[static_cast<size_t>(c.rule)] && c.ret >= 0 &&
                    live[static_cast<size_t>(gid(r, c.ret))]);
        if (l) {
          live[id] = 1;
          changed = true;
          if (s == 0 && !productive[r]) productive[r] = 1;
        }
      }
    }
  }
  FC_CHECK(productive[static_cast<size_t>(g.root)], "grammar: the root rule '",
           g.rules[static_cast<size_t>(g.root)].name, "' matches no string");

  cg.next.assign(S * C, -1);
  cg.call_off.assign(S + 1, 0);
  cg.special_off.assign(S + 1, 0);
  cg.flags.assign(S, 0);
  cg.state_rule.assign(S, 0);
  cg.rule_start.assign(R, -1);
  cg.rule_leaf.assign(R, 1);
  cg.rule_key.assign(R, {0, 0});
  for (size_t r = 0; r < R; ++r) {
    cg.rule_names.push_back(g.rules[r].name);
    if (productive[r]) cg.rule_start[r] = gid(r, 0);
    const RuleDfa& d = dfas[r];
    for (size_t s = 0; s < d.accept.size(); ++s) {
      const size_t id = static_cast<size_t>(gid(r, static_cast<int32_t>(s)));
      cg.state_rule[id] = static_cast<int32_t>(r);
      uint8_t fl = d.accept[s] ? kAccept : 0;
      if (live[id]) {
        for (size_t c = 0; c < C; ++c) {
          const int32_t t = d.next[s][c];
          if (t >= 0 && live[static_cast<size_t>(gid(r, t))]) {
            cg.next[id * C + c] = gid(r, t);
            fl |= kHasBytes;
          }
        }
        for (const Call& c : d.calls[s])
          if (productive[static_cast<size_t>(c.rule)] && c.ret >= 0 &&
              live[static_cast<size_t>(gid(r, c.ret))]) {
            cg.calls.push_back(Call{c.rule, gid(r, c.ret)});
            fl |= kHasCalls;
            cg.rule_leaf[r] = 0;
          }
        for (const SpecialEdge& e : d.specials[s])
          if (e.next >= 0 && live[static_cast<size_t>(gid(r, e.next))]) {
            cg.specials.push_back(SpecialEdge{e.token, gid(r, e.next)});
            cg.special_tokens.push_back(e.token);
            fl |= kHasSpecial;
          }
      }
      cg.flags[id] = fl;
      cg.call_off[id + 1] = static_cast<uint32_t>(cg.calls.size());
      cg.special_off[id + 1] = static_cast<uint32_t>(cg.specials.size());
    }
  }
  std::sort(cg.special_tokens.begin(), cg.special_tokens.end());
  cg.special_tokens.erase(std::unique(cg.special_tokens.begin(), cg.special_tokens.end()),
                          cg.special_tokens.end());
  cg.root_rule = g.root;

  // Leaf keys: the DFA over bytes with rule-relative state numbers.
  for (size_t r = 0; r < R; ++r) {
    if (!cg.rule_leaf[r]) continue;
    uint64_t h1 = 0x243F6A8885A308D3ull, h2 = 0x13198A2E03707344ull;
    const int32_t first = cg.rule_first[r], last = cg.rule_first[r + 1];
    h1 = mix(h1, static_cast<uint64_t>(last - first), 1);
    h2 = mix(h2, static_cast<uint64_t>(last - first), 7);
    for (int32_t s = first; s < last; ++s) {
      h1 = mix(h1, cg.flags[static_cast<size_t>(s)] & kAccept, 3);
      h2 = mix(h2, cg.flags[static_cast<size_t>(s)] & kAccept, 11);
      for (int b = 0; b < 256; ++b) {
        const int32_t t = cg.step(s, static_cast<uint8_t>(b));
        const uint64_t v = t < 0 ? 0xFFFFFFFFull : static_cast<uint64_t>(t - first);
        h1 = mix(h1, v, static_cast<uint64_t>(b));
        h2 = mix(h2, v ^ 0x5555, static_cast<uint64_t>(b) * 31);
      }
      for (uint32_t k = cg.special_off[static_cast<size_t>(s)];
           k < cg.special_off[static_cast<size_t>(s) + 1]; ++k) {
        h1 = mix(h1, static_cast<uint64_t>(cg.specials[k].token), 5);
        h2 = mix(h2, static_cast<uint64_t>(cg.specials[k].next - first), 13);
      }
    }
    cg.rule_key[r] = {h1, h2};
  }

  // Left recursion: rule r "left-calls" q if q is called at a state r reaches without reading
  // a byte or a special token (through calls of nullable rules). A cycle would make the
  // matcher's closure push forever.
  std::vector<uint8_t> nullable(R, 0);
  auto nullable_reach = [&](size_t r, std::vector<int32_t>* called) {
    std::vector<int32_t> stack;
    std::vector<uint8_t> seen(static_cast<size_t>(cg.rule_first[r + 1] - cg.rule_first[r]), 0);
    bool acc = false;
    if (cg.rule_start[r] >= 0) stack.push_back(cg.rule_start[r]);
    while (!stack.empty()) {
      const int32_t s = stack.back();
      stack.pop_back();
      const size_t li = static_cast<size_t>(s - cg.rule_first[r]);
      if (seen[li]) continue;
      seen[li] = 1;
      if (cg.accepting(s)) acc = true;
      for (uint32_t k = cg.call_off[static_cast<size_t>(s)];
           k < cg.call_off[static_cast<size_t>(s) + 1]; ++k) {
        if (called) called->push_back(cg.calls[k].rule);
        if (nullable[static_cast<size_t>(cg.calls[k].rule)]) stack.push_back(cg.calls[k].ret);
      }
    }
    return acc;
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < R; ++r)
      if (!nullable[r] && nullable_reach(r, nullptr)) {
        nullable[r] = 1;
        changed = true;
      }
  }
  std::vector<std::vector<int32_t>> left(R);
  for (size_t r = 0; r < R; ++r) nullable_reach(r, &left[r]);
  std::vector<uint8_t> color(R, 0);  // 0 new, 1 on stack, 2 done
  std::function<void(size_t)> dfs = [&](size_t r) {
    color[r] = 1;
    for (int32_t q : left[r]) {
      if (color[static_cast<size_t>(q)] == 1)
        fail("grammar: left recursion is not supported (rule '",
             g.rules[static_cast<size_t>(q)].name,
             "' can call itself before reading input); rewrite it with repetition");
      if (color[static_cast<size_t>(q)] == 0) dfs(static_cast<size_t>(q));
    }
    color[r] = 2;
  };
  for (size_t r = 0; r < R; ++r)
    if (color[r] == 0) dfs(r);
  return cg;
}

}  // namespace fc::grammar
