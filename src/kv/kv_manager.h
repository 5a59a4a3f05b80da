// Block tables of every sequence in every KV group. Pure bookkeeping, testable without a model.
//
// A KV group is a set of layers that share one block table: Gemma 4 has a sliding-window group
// and a full-attention group (KV-shared layers belong to no group: they read their source layer's
// cache). Position p of a sequence lives in block table[p / block_size], slot p % block_size.
// Sliding groups release blocks no future query can see, so a sequence never holds more than
// window + max_rollback + one step's tokens there; released entries read -1.
//
// Prefix caching (vLLM's automatic prefix caching, vllm/v1/core/kv_cache_manager.py and
// block_pool.py): block i of a token sequence is named by the chained hash
//   hash(i) = hash_block_tokens(hash(i - 1), tokens[i*B, (i+1)*B)),  hash(-1) = kRootBlockHash,
// so equal hashes mean equal whole prefixes. `commit` registers a sequence's blocks once they are
// full and their K/V is computed; each group's pool maps hash -> block. A registered block whose
// refcount drops to 0 stays cached (evictable) until its pool hands it out again.
// `find_cached_prefix` + `attach_prefix` let a new sequence start from those blocks.
//
// Sliding-window prefix rule: a hit of P tokens in a sliding group (window W) needs only the
// blocks covering positions [max(0, P - max_rollback - (W - 1)), P): exactly what the next `grow`
// of a sequence of length P keeps (keep_from), so nothing the attached sequence can read, or
// `truncate` back to within max_rollback, is missing. With max_rollback = 0 this is
// vLLM's rule (SlidingWindowManager.find_longest_cache_hit: cdiv(W - 1, B) contiguous cached
// blocks ending at the hit), since the first recomputed query, at P, reads back to P - (W - 1).
// Entries before that stay -1 and count as released.
#pragma once

#include <cstdint>
#include <limits>
#include <unordered_map>
#include <vector>

#include "kv/block_pool.h"

namespace fc::kv {

using SeqId = int64_t;

// Chained hash of the first block (the parent of block 0).
inline constexpr uint64_t kRootBlockHash = 0x6a09e667f3bcc909ull;
// Fixed 64-bit hash of n token ids chained to `parent` (stable across runs and platforms; not
// cryptographic: a collision would serve wrong K/V, about 2^-64 per lookup pair).
uint64_t hash_block_tokens(uint64_t parent, const int32_t* tokens, int n);

struct GroupSpec {
  int num_blocks = 0;
  int sliding_window = 0;  // 0: full attention (keeps everything)
};

struct ManagerConfig {
  int block_size = 16;  // tokens per block
  std::vector<GroupSpec> groups;
  // How far `truncate` may go back behind the start of the latest `grow` (speculative drafts that
  // append one token per step and roll back all of them). Sliding groups keep that much extra.
  int max_rollback = 0;
};

class KVManager {
 public:
  explicit KVManager(ManagerConfig cfg);

  const ManagerConfig& config() const { return cfg_; }
  int num_groups() const { return static_cast<int>(cfg_.groups.size()); }

  void add_sequence(SeqId id);
  // Releases every block, last block first, so the tail of a prefix is evicted before its head.
  void remove_sequence(SeqId id);
  bool has_sequence(SeqId id) const { return seqs_.count(id) != 0; }
  int length(SeqId id) const;

  // Blocks `grow(id, new_len)` would newly take from each group's pool (max over groups).
  int blocks_needed(SeqId id, int new_len) const;
  // Extends the sequence to new_len tokens (positions [length, new_len) about to be written).
  // Returns false and changes nothing if a group's pool cannot supply the blocks.
  bool grow(SeqId id, int new_len);
  // Forgets positions >= new_len (rejected draft tokens). Throws fc::Error if a sliding group has
  // already released positions that the shorter sequence's next query would need, or if the block
  // holding position new_len - 1 was committed and is shared with another sequence (its tail is
  // about to be overwritten). Dropped registered blocks stay cached: their K/V still matches their
  // hash. A kept, partially truncated registered block is unregistered.
  void truncate(SeqId id, int new_len);

  // --- prefix caching ---
  // Longest P such that every group can serve positions [0, P) of `tokens` from cached blocks: a
  // multiple of block_size, at most tokens.size() - 1 (the last token is always recomputed to give
  // logits), and at most max_len. Full groups need blocks [0, P/B) cached; sliding groups see the
  // rule above (so the longest P below a given hit is not simply that hit minus a block).
  //
  // `block_keys` (optional, for every prefix-cache call of a sequence alike): a 64-bit key per
  // block mixed into that block's hash when non-zero, e.g. the identity of the images whose soft
  // tokens the block holds (the same placeholder ids with another image must not hit; vLLM's
  // _gen_mm_extra_hash_keys). Blocks past its end, or with key 0, hash their tokens only.
  int find_cached_prefix(const std::vector<int32_t>& tokens,
                         int max_len = std::numeric_limits<int>::max(),
                         const std::vector<uint64_t>* block_keys = nullptr) const;
  // Whether a fresh sequence could attach_prefix(tokens, prefix_len) then grow(new_len) now
  // (reviving evictable prefix blocks takes them out of the free count).
  bool can_admit(const std::vector<int32_t>& tokens, int prefix_len, int new_len,
                 const std::vector<uint64_t>* block_keys = nullptr) const;
  // For a fresh (length 0) sequence: takes the cached blocks of positions [0, prefix_len) (one
  // reference each, reviving evictable ones) and sets length = prefix_len. prefix_len must be one
  // find_cached_prefix allows now; 0 only records the query. Counts prefix_stats().
  void attach_prefix(SeqId id, const std::vector<int32_t>& tokens, int prefix_len,
                     const std::vector<uint64_t>* block_keys = nullptr);
  // Registers the blocks of `tokens` that are full and computed (positions < num_computed <=
  // length). Incremental: only blocks not registered by earlier calls are hashed.
  void commit(SeqId id, const std::vector<int32_t>& tokens, int num_computed,
              const std::vector<uint64_t>* block_keys = nullptr);

  struct PrefixStats {
    int64_t query_tokens = 0;  // tokens of every attach_prefix call
    int64_t hit_tokens = 0;    // of which served from the cache
  };
  const PrefixStats& prefix_stats() const { return stats_; }
  int num_cached_blocks(int group) const { return pool(group).num_registered(); }
  int num_evictable_blocks(int group) const { return pool(group).num_evictable(); }

  // Debug check (tests): refcounts equal table references, no block leaked, the hash map, the
  // per-sequence hash chains and the sliding-window release state agree. Throws fc::Error.
  void check_invariants() const;

  // Table of one group: entry i is the block holding positions [i*B, (i+1)*B), -1 if released.
  const std::vector<int32_t>& block_table(SeqId id, int group) const;
  int num_free_blocks(int group) const { return pools_[static_cast<size_t>(group)].num_free(); }
  int num_blocks(int group) const { return pools_[static_cast<size_t>(group)].num_blocks(); }

 private:
  struct Seq {
    int length = 0;
    std::vector<std::vector<int32_t>> tables;  // [group][block index]
    std::vector<int> released;                 // [group] leading entries released
    // Chained hashes of blocks [0, hashes.size()): the blocks `commit` has seen full and computed
    // (or attach_prefix took from the cache).
    std::vector<uint64_t> hashes;
  };
  Seq& seq(SeqId id);
  const Seq& seq(SeqId id) const;
  const BlockPool& pool(int group) const { return pools_.at(static_cast<size_t>(group)); }
  // First position a sliding group must keep for a sequence of `length` tokens (0 for full).
  int keep_from(int length, int group) const;
  // Hashes of the first n_blocks full blocks of tokens: [n_blocks].
  std::vector<uint64_t> chain_hashes(const std::vector<int32_t>& tokens, int n_blocks,
                                     const std::vector<uint64_t>* block_keys) const;
  uint64_t block_hash(uint64_t parent, const std::vector<int32_t>& tokens, size_t i,
                      const std::vector<uint64_t>* block_keys) const;

  ManagerConfig cfg_;
  std::vector<BlockPool> pools_;
  std::unordered_map<SeqId, Seq> seqs_;
  PrefixStats stats_;
};

}  // namespace fc::kv
