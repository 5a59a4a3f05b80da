#include "grammar/mask.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "core/error.h"

namespace fc::grammar {

std::shared_ptr<const PositionMask> LeafMaskCache::find(const std::array<uint64_t, 2>& key,
                                                        int32_t local) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(Key{key[0], key[1], static_cast<uint64_t>(local)});
  return it == map_.end() ? nullptr : it->second;
}

void LeafMaskCache::insert(const std::array<uint64_t, 2>& key, int32_t local,
                           std::shared_ptr<const PositionMask> m) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t b = m->bytes_used();
  if (bytes_ + b > max_bytes_) {  // simple bound: start over (entries in use stay alive)
    map_.clear();
    bytes_ = 0;
  }
  if (map_.emplace(Key{key[0], key[1], static_cast<uint64_t>(local)}, std::move(m)).second)
    bytes_ += b;
}

size_t LeafMaskCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_.size();
}

GrammarMasks::GrammarMasks(std::shared_ptr<const CompiledGrammar> g,
                           std::shared_ptr<const Vocab> vocab,
                           std::shared_ptr<LeafMaskCache> leaf_cache)
    : g_(std::move(g)), vocab_(std::move(vocab)), leaf_cache_(std::move(leaf_cache)) {
  for (int32_t t : g_->special_tokens)
    FC_CHECK(t >= 0 && t < vocab_->size(), "grammar: special token id ", t,
             " is outside the vocabulary");
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
  const int32_t r = g_->state_rule[static_cast<size_t>(s)];
  const bool leaf = g_->rule_leaf[static_cast<size_t>(r)] && leaf_cache_;
  const int32_t local = s - g_->rule_first[static_cast<size_t>(r)];
  std::shared_ptr<const PositionMask> pm;
  if (leaf) pm = leaf_cache_->find(g_->rule_key[static_cast<size_t>(r)], local);
  if (!pm) {
    pm = compute(s, scratch);
    if (leaf) leaf_cache_->insert(g_->rule_key[static_cast<size_t>(r)], local, pm);
  }
  std::lock_guard<std::mutex> lock(mu_);
  return positions_.emplace(s, pm).first->second;
}

std::shared_ptr<PositionMask> GrammarMasks::compute(int32_t s, MaskScratch& sc) const {
  const CompiledGrammar& g = *g_;
  const TokenTrie& T = vocab_->trie();
  const size_t N = T.nodes.size();
  std::vector<int32_t> accepted;
  std::vector<std::pair<std::string_view, int32_t>> unc;
  auto& pops = sc.pops;
  pops.clear();
  auto pm = std::make_shared<PositionMask>();
  // The rule may end at node i (depth d): subtrees above kExitNodes nodes become exits.
  constexpr uint32_t kExitNodes = 256;
  auto push_pop = [&](size_t i, uint16_t d) {
    const bool big = T.nodes[i].end - i > kExitNodes;
    if (big) pm->exits.push_back(static_cast<uint32_t>(i));
    pops.push_back(MaskScratch::Pop{d, big});
  };
  // Tokens of nodes [i, end) died inside the rule; each is still possible through every point
  // on its path where the rule could have ended (pops), with the bytes after that point.
  auto emit_dead = [&](size_t i, size_t end) {
    if (pops.empty()) return;
    for (size_t j = i; j < end; ++j)
      for (uint32_t k = T.nodes[j].tok_begin; k < T.nodes[j].tok_end; ++k) {
        const std::string_view b = vocab_->bytes(T.toks[k]);
        for (const MaskScratch::Pop& p : pops)
          if (!p.exit) unc.emplace_back(b.substr(p.depth), T.toks[k]);
      }
  };
  const int32_t r = g.state_rule[static_cast<size_t>(s)];
  if (g.rule_leaf[static_cast<size_t>(r)]) {
    auto& st = sc.depth_states;
    st.assign(2, -1);
    st[0] = s;
    for (size_t i = 1; i < N;) {
      const TokenTrie::Node& nd = T.nodes[i];
      const uint16_t d = nd.depth;
      while (!pops.empty() && pops.back().depth >= d) pops.pop_back();
      const int32_t t = g.step(st[d - 1], nd.byte);
      if (t < 0) {
        emit_dead(i, nd.end);
        i = nd.end;
        continue;
      }
      if (st.size() <= d) st.resize(d + 1u);
      st[d] = t;
      for (uint32_t k = nd.tok_begin; k < nd.tok_end; ++k) accepted.push_back(T.toks[k]);
      if (g.accepting(t)) push_pop(i, d);
      ++i;
    }
  } else {
    auto& sets = sc.depth_sets;
    if (sets.size() < 2) sets.resize(2);
    sets[0].assign(1, Stack{s, kBottomFrame});
    sc.arena.clear();
    for (size_t i = 1; i < N;) {
      const TokenTrie::Node& nd = T.nodes[i];
      const uint16_t d = nd.depth;
      while (!pops.empty() && pops.back().depth >= d) pops.pop_back();
      step_byte(g, sets[d - 1], nd.byte, sc.work);
      if (sc.work.empty()) {
        emit_dead(i, nd.end);
        i = nd.end;
        continue;
      }
      if (sets.size() <= d) sets.resize(d + 1u);
      Closure c;
      close_stacks(g, sc.arena, sc.work, sets[d], c, sc.seen);
      if (sets[d].empty() && !c.popped) {
        emit_dead(i, nd.end);
        i = nd.end;
        continue;
      }
      for (uint32_t k = nd.tok_begin; k < nd.tok_end; ++k) accepted.push_back(T.toks[k]);
      if (c.popped) push_pop(i, d);
      if (sets[d].empty()) {  // the rule ended and cannot go on: the subtree depends on context
        emit_dead(i + 1, nd.end);
        i = nd.end;
        continue;
      }
      ++i;
    }
  }
  if (accepted.size() * 32 > static_cast<size_t>(vocab_->size())) {
    pm->bits.assign(vocab_->words(), 0);
    for (int32_t t : accepted) pm->bits[static_cast<size_t>(t) >> 5] |= 1u << (t & 31);
  } else {
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
            const TokenTrie& V = vocab_->trie();
            for (uint32_t x : pm->exits)
              walk_suffixes(V, x + 1, V.nodes[x].end, V.nodes[x].depth, init, m, row, sc);
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
