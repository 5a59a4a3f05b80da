// Token masks: which tokens a Matcher allows next, as a packed row of uint32 words (bit j%32 of
// word j/32 = token j allowed; ceil(V/32) words, the layout xgrammar, llguidance and vLLM share).
//
// Per grammar position (a DFA state s of rule R) we compute once, without looking at the stack
// below R, which tokens R itself accepts from s (their bytes are consumed inside R and the rules
// it calls): those are allowed whatever the context ("context-independent"). Tokens that make R
// end part-way (R accepts after a non-empty prefix and bytes remain) are "uncertain": they are
// kept in a trie keyed by the bytes left after R ended. At mask time, a position contributes its
// accepted set (one OR of a bitset or a short id list) plus a walk of that suffix trie from the
// real parent stacks — usually a handful of nodes (after a closing quote only `,` `}` `]` ...
// can follow). This is xgrammar's adaptive token mask cache, organised so the context-dependent
// part is a shared-prefix walk. Positions of leaf rules (plain DFAs: JSON strings, numbers,
// regex lexemes) are keyed by the DFA's structure and shared between grammars (LeafMaskCache).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "grammar/automaton.h"
#include "grammar/matcher.h"
#include "grammar/vocab.h"

namespace fc::grammar {

struct PositionMask {
  std::vector<uint32_t> bits;  // dense accepted set (a full row), or empty
  std::vector<int32_t> ids;    // sparse accepted set, when bits is empty
  TokenTrie suffixes;          // uncertain tokens by their bytes left after the rule ended
  // Exits with large subtrees: vocabulary-trie nodes where the rule may end; every token below
  // one is uncertain with the bytes after that node (walked in the vocabulary trie itself, so
  // e.g. the 170k tokens under "\n  " are not copied into `suffixes`). Tokens below that the
  // rule accepts by itself are in the accepted set already, so walking them again is harmless.
  std::vector<uint32_t> exits;
  size_t bytes_used() const {
    return bits.size() * 4 + ids.size() * 4 + suffixes.bytes_used() + exits.size() * 4;
  }
};

// Positions of leaf rules, for every grammar on one vocabulary. Thread-safe.
class LeafMaskCache {
 public:
  explicit LeafMaskCache(size_t max_bytes = size_t{1} << 30) : max_bytes_(max_bytes) {}
  std::shared_ptr<const PositionMask> find(const std::array<uint64_t, 2>& key, int32_t local);
  void insert(const std::array<uint64_t, 2>& key, int32_t local,
              std::shared_ptr<const PositionMask> m);
  size_t size() const;

 private:
  using Key = std::array<uint64_t, 3>;
  mutable std::mutex mu_;
  std::map<Key, std::shared_ptr<const PositionMask>> map_;
  size_t bytes_ = 0, max_bytes_;
};

// Working memory for mask computation (one per thread).
struct MaskScratch {
  std::vector<std::vector<Stack>> depth_sets;
  std::vector<Stack> work, seen;
  std::vector<int32_t> depth_states;
  struct Pop {
    uint16_t depth;
    bool exit;  // exported as a PositionMask exit (its tokens are not copied)
  };
  std::vector<Pop> pops;
  StackArena arena;  // frames pushed in context-free walks
};

// Masks for one compiled grammar on one vocabulary. Thread-safe (positions computed on first
// use, under a lock for publication only).
class GrammarMasks {
 public:
  GrammarMasks(std::shared_ptr<const CompiledGrammar> g, std::shared_ptr<const Vocab> vocab,
               std::shared_ptr<LeafMaskCache> leaf_cache);

  // row[vocab.words()]: set bits for every text token and special token the matcher allows
  // next (stop tokens are the caller's business). Overwrites the row.
  void fill(const Matcher& m, uint32_t* row, MaskScratch& scratch) const;

  // The position entry of state s (computed if needed).
  std::shared_ptr<const PositionMask> position(int32_t s, MaskScratch& scratch) const;
  size_t cached_positions() const;

  const CompiledGrammar& grammar() const { return *g_; }
  const Vocab& vocab() const { return *vocab_; }

 private:
  std::shared_ptr<PositionMask> compute(int32_t s, MaskScratch& scratch) const;
  // Walks nodes [begin, end) of t (a subtree below a node of depth `base`) from `init`.
  void walk_suffixes(const TokenTrie& t, size_t begin, size_t end, uint16_t base,
                     const std::vector<Stack>& init, const Matcher& m, uint32_t* row,
                     MaskScratch& scratch) const;

  std::shared_ptr<const CompiledGrammar> g_;
  std::shared_ptr<const Vocab> vocab_;
  std::shared_ptr<LeafMaskCache> leaf_cache_;
  mutable std::mutex mu_;
  mutable std::unordered_map<int32_t, std::shared_ptr<const PositionMask>> positions_;
};

}  // namespace fc::grammar
