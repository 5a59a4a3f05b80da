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
//
// Two exact shortcuts keep first visits of a position short (issue 13, docs/benchmarks.md):
// - Plain-text skip: a leaf position walks the vocabulary split at load (Vocab::slice_trie,
//   rest_trie). In the slice (tokens of whole UTF-8 characters without controls, '"', '\\'),
//   a subtree is accepted whole, without a walk, once the DFA state t at its node is "closed"
//   for the node's UTF-8 class: no plain-text continuation can kill the DFA from t (a search
//   over (state, class) pairs, memoized per position). A JSON string or property-key state is
//   closed at the root, so its ~90% of the vocabulary costs one row copy.
// - FOLLOW filter: an uncertain token whose bytes after the rule's end start with a byte no
//   context can take (follow.h) is dropped at precompute time, and an exit whose children all
//   start that way is not kept.
// MaskOptions turns both off: the reference walk of the whole trie, for tests.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "grammar/automaton.h"
#include "grammar/follow.h"
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
  // The top two bits name the trie (kExitFull / kExitSlice / kExitRest), the rest the node.
  std::vector<uint32_t> exits;
  size_t bytes_used() const {
    return bits.size() * 4 + ids.size() * 4 + suffixes.bytes_used() + exits.size() * 4;
  }
};

constexpr uint32_t kExitFull = 0, kExitSlice = 1u << 30, kExitRest = 2u << 30;
constexpr uint32_t kExitNodeMask = (1u << 30) - 1;

struct MaskOptions {
  bool plain_text_skip = true;  // walk leaf positions over the split vocabulary, skip closed
  bool follow_filter = true;    // drop uncertain tokens no context can take
};

// Positions of leaf rules, for every grammar on one vocabulary. Thread-safe. Keyed by the leaf
// DFA's hash, the state within it, the rule's FOLLOW set (the filter depends on it) and the
// options.
class LeafMaskCache {
 public:
  using Key = std::array<uint64_t, 8>;
  explicit LeafMaskCache(size_t max_bytes = size_t{1} << 30) : max_bytes_(max_bytes) {}
  std::shared_ptr<const PositionMask> find(const Key& key);
  void insert(const Key& key, std::shared_ptr<const PositionMask> m);
  size_t size() const;

 private:
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
  struct Active {  // a pop whose uncertain tokens are kept (FOLLOW filter passed)
    uint16_t depth;
    bool per_token;  // the byte after the pop differs between the tokens: check each
  };
  std::vector<Active> active;
  StackArena arena;  // frames pushed in context-free walks
  // Plain-text closure search of one position: memo per (rule-local state, UTF-8 class), the
  // pairs visited by the current search, and its DFS frames.
  std::vector<uint8_t> closed_memo;
  std::vector<uint32_t> closed_seen;
  struct ClosedFrame {
    int32_t state;
    uint8_t cls;
    uint16_t next_byte;
  };
  std::vector<ClosedFrame> closed_stack;
};

// Masks for one compiled grammar on one vocabulary. Thread-safe (positions computed on first
// use, under a lock for publication only).
class GrammarMasks {
 public:
  GrammarMasks(std::shared_ptr<const CompiledGrammar> g, std::shared_ptr<const Vocab> vocab,
               std::shared_ptr<LeafMaskCache> leaf_cache, MaskOptions opts = {});

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
  const TokenTrie& exit_trie(uint32_t x) const;
  // Walks nodes [begin, end) of t (a subtree below a node of depth `base`) from `init`.
  void walk_suffixes(const TokenTrie& t, size_t begin, size_t end, uint16_t base,
                     const std::vector<Stack>& init, const Matcher& m, uint32_t* row,
                     MaskScratch& scratch) const;

  std::shared_ptr<const CompiledGrammar> g_;
  std::shared_ptr<const Vocab> vocab_;
  std::shared_ptr<LeafMaskCache> leaf_cache_;
  MaskOptions opts_;
  std::vector<ByteBits> follow_;  // per rule (follow.h)
  mutable std::mutex mu_;
  mutable std::unordered_map<int32_t, std::shared_ptr<const PositionMask>> positions_;
};

}  // namespace fc::grammar
