#include "grammar/mask.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>

#include "core/error.h"

namespace fc::grammar {
namespace {

// DFA steps one position's plain-text closure searches may take (a few hundred µs at most);
// past it pairs count as not closed, which only means walking them.
constexpr size_t kClosedBudget = size_t{1} << 17;

// Whether no plain-text continuation from UTF-8 class c (vocab.h) kills the leaf DFA at state t
// (a state of the rule whose states start at `first`): a DFS over the (state, class) pairs that
// plain-text bytes reach. Memo per pair: 1 closed, 2 not, 3 seen by the running search. A pair
// that reaches a dead step is not closed, nor is any pair on the DFS path to it; a search that
// ends without one proves every pair it saw closed (it saw all they reach).
// The bytes a closure search tries: per UTF-8 class, one byte for each distinct (grammar byte
// class, next UTF-8 class) pair, since the DFA cannot tell the others apart (tens instead of
// 256 per pair).
struct PlainReps {
  std::array<std::array<uint8_t, 256>, kUtf8Classes> bytes;
  std::array<uint16_t, kUtf8Classes> count{};
  explicit PlainReps(const CompiledGrammar& g) {
    for (int c = 0; c < kUtf8Classes; ++c) {
      std::vector<uint8_t> seen(static_cast<size_t>(g.num_classes) * kUtf8Classes, 0);
      for (int b = 0; b < 256; ++b) {
        const int nc = plain_text_step(c, static_cast<uint8_t>(b));
        if (nc < 0) continue;
        uint8_t& s = seen[static_cast<size_t>(g.byte_class[static_cast<size_t>(b)]) * kUtf8Classes +
                          static_cast<size_t>(nc)];
        if (s) continue;
        s = 1;
        bytes[static_cast<size_t>(c)][count[static_cast<size_t>(c)]++] = static_cast<uint8_t>(b);
      }
    }
  }
};

bool plain_closed(const CompiledGrammar& g, const PlainReps& reps, int32_t first, int32_t t, int c,
                  MaskScratch& sc, size_t& budget) {
  auto key = [first](int32_t u, int k) {
    return static_cast<size_t>(u - first) * kUtf8Classes + static_cast<size_t>(k);
  };
  std::vector<uint8_t>& memo = sc.closed_memo;
  const uint8_t m0 = memo[key(t, c)];
  if (m0 == 1 || m0 == 2) return m0 == 1;
  if (budget == 0) return false;
  auto& stk = sc.closed_stack;
  auto& seen = sc.closed_seen;
  stk.clear();
  seen.clear();
  memo[key(t, c)] = 3;
  seen.push_back(static_cast<uint32_t>(key(t, c)));
  stk.push_back(MaskScratch::ClosedFrame{t, static_cast<uint8_t>(c), 0});
  bool ok = true;
  while (!stk.empty()) {
    MaskScratch::ClosedFrame& f = stk.back();
    if (f.next_byte == reps.count[f.cls]) {
      stk.pop_back();
      continue;
    }
    const uint8_t b = reps.bytes[f.cls][f.next_byte++];
    const int nc = plain_text_step(f.cls, b);
    if (budget == 0) {
      ok = false;
      break;
    }
    --budget;
    const int32_t u = g.step(f.state, b);
    if (u < 0) {
      ok = false;
      break;
    }
    uint8_t& m = memo[key(u, nc)];
    if (m == 1 || m == 3) continue;
    if (m == 2) {
      ok = false;
      break;
    }
    m = 3;
    seen.push_back(static_cast<uint32_t>(key(u, nc)));
    stk.push_back(MaskScratch::ClosedFrame{u, static_cast<uint8_t>(nc), 0});  // f is stale now
  }
  for (uint32_t k : seen) memo[k] = ok ? 1 : 0;
  if (!ok)
    for (const MaskScratch::ClosedFrame& f : stk) memo[key(f.state, f.cls)] = 2;
  return ok;
}

}  // namespace

std::shared_ptr<const PositionMask> LeafMaskCache::find(const Key& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(key);
  return it == map_.end() ? nullptr : it->second;
}

void LeafMaskCache::insert(const Key& key, std::shared_ptr<const PositionMask> m) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t b = m->bytes_used();
  if (bytes_ + b > max_bytes_) {  // simple bound: start over (entries in use stay alive)
    map_.clear();
    bytes_ = 0;
  }
  if (map_.emplace(key, std::move(m)).second) bytes_ += b;
}

size_t LeafMaskCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_.size();
}

GrammarMasks::GrammarMasks(std::shared_ptr<const CompiledGrammar> g,
                           std::shared_ptr<const Vocab> vocab,
                           std::shared_ptr<LeafMaskCache> leaf_cache, MaskOptions opts)
    : g_(std::move(g)), vocab_(std::move(vocab)), leaf_cache_(std::move(leaf_cache)), opts_(opts) {
  for (int32_t t : g_->special_tokens)
    FC_CHECK(t >= 0 && t < vocab_->size(), "grammar: special token id ", t,
             " is outside the vocabulary");
  FC_CHECK(vocab_->trie().nodes.size() <= kExitNodeMask, "grammar: the vocabulary trie has ",
           vocab_->trie().nodes.size(), " nodes, more than masks can address");
  if (opts_.follow_filter) follow_ = rule_follow_bytes(*g_);
}

size_t GrammarMasks::cached_positions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return positions_.size();
}

std::shared_ptr<const PositionMask> GrammarMasks::position(int32_t s, MaskScratch& scratch) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = positions_.find(s);
    if (it != positions_.end()) return it->second;
  }
  const size_t r = static_cast<size_t>(g_->state_rule[static_cast<size_t>(s)]);
  const bool leaf = g_->rule_leaf[r] && leaf_cache_;
  LeafMaskCache::Key key{};
  if (leaf) {
    key[0] = g_->rule_key[r][0];
    key[1] = g_->rule_key[r][1];
    key[2] = static_cast<uint64_t>(s - g_->rule_first[r]);
    if (opts_.follow_filter) std::copy(follow_[r].begin(), follow_[r].end(), key.begin() + 3);
    key[7] = (opts_.plain_text_skip ? 1u : 0u) | (opts_.follow_filter ? 2u : 0u);
  }
  std::shared_ptr<const PositionMask> pm;
  if (leaf) pm = leaf_cache_->find(key);
  if (!pm) {
    pm = compute(s, scratch);
    if (leaf) leaf_cache_->insert(key, pm);
  }
  std::lock_guard<std::mutex> lock(mu_);
  return positions_.emplace(s, pm).first->second;
}

const TokenTrie& GrammarMasks::exit_trie(uint32_t x) const {
  switch (x & ~kExitNodeMask) {
    case kExitSlice:
      return vocab_->slice_trie();
    case kExitRest:
      return vocab_->rest_trie();
    default:
      return vocab_->trie();
  }
}

std::shared_ptr<PositionMask> GrammarMasks::compute(int32_t s, MaskScratch& sc) const {
  const CompiledGrammar& g = *g_;
  const Vocab& V = *vocab_;
  const size_t r = static_cast<size_t>(g.state_rule[static_cast<size_t>(s)]);
  const ByteBits* F = opts_.follow_filter ? &follow_[r] : nullptr;
  auto follows = [F](uint8_t b) { return F == nullptr || has_byte(*F, b); };
  std::vector<int32_t> accepted;
  std::vector<std::pair<uint32_t, uint32_t>> slice_ranges;  // slice toks accepted whole
  bool whole_slice = false;
  std::vector<std::pair<std::string_view, int32_t>> unc;
  auto& pops = sc.pops;
  pops.clear();
  auto pm = std::make_shared<PositionMask>();
  // The rule may end at node i (depth d) of T: subtrees above kExitNodes nodes become exits.
  // With the FOLLOW filter, a node whose children all start with bytes no context takes is no
  // pop at all (nothing below it can go on after the rule).
  constexpr uint32_t kExitNodes = 256;
  auto push_pop = [&](const TokenTrie& T, uint32_t tag, size_t i, uint16_t d) {
    const uint32_t end = T.nodes[i].end;
    if (F) {
      bool any = false;
      for (size_t c = i + 1; c < end && !any; c = T.nodes[c].end) any = follows(T.nodes[c].byte);
      if (!any) return;
    }
    const bool big = end - i > kExitNodes;
    if (big) pm->exits.push_back(static_cast<uint32_t>(i) | tag);
    pops.push_back(MaskScratch::Pop{d, big});
  };
  // Tokens of nodes [i, end) of T died inside the rule (all pass through a node of depth
  // `shared`); each is still possible through every point on its path where the rule could
  // have ended (pops), with the bytes after that point, if a context can take their first.
  auto emit_dead = [&](const TokenTrie& T, size_t i, size_t end, uint16_t shared) {
    if (pops.empty() || i >= end) return;
    const uint32_t k0 = T.nodes[i].tok_begin;
    const uint32_t k1 =
        end < T.nodes.size() ? T.nodes[end].tok_begin : static_cast<uint32_t>(T.toks.size());
    if (k0 == k1) return;
    const std::string_view b0 = V.bytes(T.toks[k0]);
    auto& act = sc.active;
    act.clear();
    for (const MaskScratch::Pop& p : pops) {
      if (p.exit) continue;
      if (p.depth >= shared)
        act.push_back(MaskScratch::Active{p.depth, true});
      else if (follows(static_cast<uint8_t>(b0[p.depth])))
        act.push_back(MaskScratch::Active{p.depth, false});
    }
    for (uint32_t k = k0; k < k1 && !act.empty(); ++k) {
      const std::string_view b = V.bytes(T.toks[k]);
      for (const MaskScratch::Active& a : act)
        if (!a.per_token || follows(static_cast<uint8_t>(b[a.depth])))
          unc.emplace_back(b.substr(a.depth), T.toks[k]);
    }
  };
  if (g.rule_leaf[r]) {
    const int32_t first = g.rule_first[r];
    size_t budget = kClosedBudget;
    const PlainReps reps(g);
    if (opts_.plain_text_skip)
      sc.closed_memo.assign(static_cast<size_t>(g.rule_first[r + 1] - first) * kUtf8Classes, 0);
    // cls: the slice's UTF-8 classes when T is the slice (closed subtrees are taken whole).
    auto walk = [&](const TokenTrie& T, uint32_t tag, const uint8_t* cls) {
      auto& st = sc.depth_states;
      st.assign(2, -1);
      st[0] = s;
      pops.clear();
      for (size_t i = 1; i < T.nodes.size();) {
        const TokenTrie::Node& nd = T.nodes[i];
        const uint16_t d = nd.depth;
        while (!pops.empty() && pops.back().depth >= d) pops.pop_back();
        const int32_t t = g.step(st[d - 1], nd.byte);
        if (t < 0) {
          emit_dead(T, i, nd.end, d);
          i = nd.end;
          continue;
        }
        if (cls && plain_closed(g, reps, first, t, cls[i], sc, budget)) {
          slice_ranges.emplace_back(nd.tok_begin, T.subtree_tok_end(i));
          i = nd.end;
          continue;
        }
        if (st.size() <= d) st.resize(d + 1u);
        st[d] = t;
        for (uint32_t k = nd.tok_begin; k < nd.tok_end; ++k) accepted.push_back(T.toks[k]);
        if (g.accepting(t)) push_pop(T, tag, i, d);
        ++i;
      }
    };
    if (opts_.plain_text_skip) {
      if (plain_closed(g, reps, first, s, 0, sc, budget)) {
        whole_slice = true;
      } else {
        walk(V.slice_trie(), kExitSlice, V.slice_class().data());
      }
      walk(V.rest_trie(), kExitRest, nullptr);
    } else {
      walk(V.trie(), kExitFull, nullptr);
    }
  } else {
    const TokenTrie& T = V.trie();
    auto& sets = sc.depth_sets;
    if (sets.size() < 2) sets.resize(2);
    sets[0].assign(1, Stack{s, kBottomFrame});
    sc.arena.clear();
    for (size_t i = 1; i < T.nodes.size();) {
      const TokenTrie::Node& nd = T.nodes[i];
      const uint16_t d = nd.depth;
      while (!pops.empty() && pops.back().depth >= d) pops.pop_back();
      step_byte(g, sets[d - 1], nd.byte, sc.work);
      if (sc.work.empty()) {
        emit_dead(T, i, nd.end, d);
        i = nd.end;
        continue;
      }
      if (sets.size() <= d) sets.resize(d + 1u);
      Closure c;
      close_stacks(g, sc.arena, sc.work, sets[d], c, sc.seen);
      if (sets[d].empty() && !c.popped) {
        emit_dead(T, i, nd.end, d);
        i = nd.end;
        continue;
      }
      for (uint32_t k = nd.tok_begin; k < nd.tok_end; ++k) accepted.push_back(T.toks[k]);
      if (c.popped) push_pop(T, kExitFull, i, d);
      if (sets[d].empty()) {  // the rule ended and cannot go on: the subtree depends on context
        emit_dead(T, i + 1, nd.end, d);
        i = nd.end;
        continue;
      }
      ++i;
    }
  }
  const TokenTrie& ST = V.slice_trie();
  size_t count = accepted.size() + (whole_slice ? V.slice_tokens() : 0);
  for (const auto& [a, b] : slice_ranges) count += b - a;
  if (count * 32 > static_cast<size_t>(V.size())) {
    if (whole_slice) {
      pm->bits = V.slice_bits();
    } else {
      pm->bits.assign(V.words(), 0);
    }
    auto set = [&](int32_t t) { pm->bits[static_cast<size_t>(t) >> 5] |= 1u << (t & 31); };
    for (int32_t t : accepted) set(t);
    for (const auto& [a, b] : slice_ranges)
      for (uint32_t k = a; k < b; ++k) set(ST.toks[k]);
  } else {
    if (whole_slice) accepted.insert(accepted.end(), ST.toks.begin(), ST.toks.end());
    for (const auto& [a, b] : slice_ranges)
      accepted.insert(accepted.end(), ST.toks.begin() + a, ST.toks.begin() + b);
    std::sort(accepted.begin(), accepted.end());
    pm->ids = std::move(accepted);
  }
  pm->suffixes = TokenTrie::build(std::move(unc));
  return pm;
}
void GrammarMasks::walk_suffixes(const TokenTrie& T, size_t begin, size_t end, uint16_t base,
                                 const std::vector<Stack>& init, const Matcher& m, uint32_t* row,
                                 MaskScratch& sc) const {
  const CompiledGrammar& g = *g_;
  auto& sets = sc.depth_sets;
  if (sets.size() < 2) sets.resize(2);
  sets[0] = init;
  for (size_t i = begin; i < end;) {
    const TokenTrie::Node& nd = T.nodes[i];
    const uint16_t d = static_cast<uint16_t>(nd.depth - base);
    step_byte(g, sets[d - 1], nd.byte, sc.work);
    if (sc.work.empty()) {
      i = nd.end;
      continue;
    }
    if (sets.size() <= d) sets.resize(d + 1u);
    Closure c;
    close_stacks(g, m.arena(), sc.work, sets[d], c, sc.seen);
    if (sets[d].empty() && !c.can_end) {
      i = nd.end;
      continue;
    }
    for (uint32_t k = nd.tok_begin; k < nd.tok_end; ++k)
      row[static_cast<size_t>(T.toks[k]) >> 5] |= 1u << (T.toks[k] & 31);
    i = sets[d].empty() ? nd.end : i + 1;
  }
}

void GrammarMasks::fill(const Matcher& m, uint32_t* row, MaskScratch& sc) const {
  const size_t W = vocab_->words();
  std::memset(row, 0, W * 4);
  const std::vector<Stack>& st = m.stacks();
  std::vector<Stack> init;
  for (size_t a = 0; a < st.size();) {
    size_t b = a;
    while (b < st.size() && st[b].state == st[a].state) ++b;
    const int32_t s = st[a].state;
    if (g_->flags[static_cast<size_t>(s)] & kHasBytes) {
      const std::shared_ptr<const PositionMask> pm = position(s, sc);
      if (!pm->bits.empty()) {
        const uint32_t* src = pm->bits.data();
        for (size_t w = 0; w < W; ++w) row[w] |= src[w];
      } else {
        for (int32_t t : pm->ids) row[static_cast<size_t>(t) >> 5] |= 1u << (t & 31);
      }
      if (!pm->suffixes.empty() || !pm->exits.empty()) {
        sc.work.clear();
        for (size_t k = a; k < b; ++k)
          if (st[k].parent < kBottomFrame) sc.work.push_back(m.arena().at(st[k].parent));
        if (!sc.work.empty()) {
          Closure c;
          close_stacks(*g_, m.arena(), sc.work, init, c, sc.seen);
          if (!init.empty()) {
            if (!pm->suffixes.empty())
              walk_suffixes(pm->suffixes, 1, pm->suffixes.nodes.size(), 0, init, m, row, sc);
            for (uint32_t x : pm->exits) {
              const TokenTrie& X = exit_trie(x);
              const uint32_t n = x & kExitNodeMask;
              walk_suffixes(X, n + 1, X.nodes[n].end, X.nodes[n].depth, init, m, row, sc);
            }
          }
        }
      }
    }
    for (size_t k = a; k < b; ++k) {
      for (uint32_t e = g_->special_off[static_cast<size_t>(s)];
           e < g_->special_off[static_cast<size_t>(s) + 1]; ++e) {
        const int32_t t = g_->specials[e].token;
        row[static_cast<size_t>(t) >> 5] |= 1u << (t & 31);
      }
      break;  // the edges depend on the state only
    }
    a = b;
  }
}

}  // namespace fc::grammar
