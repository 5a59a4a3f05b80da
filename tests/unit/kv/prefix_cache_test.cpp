// Prefix caching in KVManager / BlockPool without a model: chained hashes, hits and misses,
// sliding-window hits, eviction order, truncation, and block accounting.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "core/error.h"
#include "kv/kv_manager.h"

namespace fc::kv {
namespace {

constexpr int kB = 4;  // block size of every test here

// Tokens base, base + 1, ... (n of them).
std::vector<int32_t> seq_tokens(int n, int32_t base = 100) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), base);
  return t;
}

ManagerConfig groups(std::vector<GroupSpec> g, int rollback = 0) {
  ManagerConfig c;
  c.block_size = kB;
  c.max_rollback = rollback;
  c.groups = std::move(g);
  return c;
}

// Adds sequence id, computes `tokens` in steps of `step` tokens, committing after each.
void compute(KVManager& m, SeqId id, const std::vector<int32_t>& tokens, int step) {
  m.add_sequence(id);
  const int n = static_cast<int>(tokens.size());
  for (int len = 0; len < n;) {
    len = std::min(n, len + step);
    ASSERT_TRUE(m.grow(id, len));
    m.commit(id, tokens, len);
    m.check_invariants();
  }
}

void expect_all_free(const KVManager& m) {
  m.check_invariants();
  for (int g = 0; g < m.num_groups(); ++g) EXPECT_EQ(m.num_free_blocks(g), m.num_blocks(g));
}

TEST(BlockHash, StableChainedAndOrderSensitive) {
  const std::vector<int32_t> a = {1, 2, 3, 4}, b = {1, 2, 4, 3};
  const uint64_t ha = hash_block_tokens(kRootBlockHash, a.data(), 4);
  // Fixed value: the hash must not change between runs or builds (no std::hash).
  EXPECT_EQ(ha, hash_block_tokens(kRootBlockHash, a.data(), 4));
  EXPECT_EQ(ha, 0x515bd091bea6e172ull) << std::hex << ha;
  EXPECT_NE(ha, hash_block_tokens(kRootBlockHash, b.data(), 4));
  EXPECT_NE(hash_block_tokens(ha, a.data(), 4), ha);  // the parent is part of the name
  EXPECT_NE(hash_block_tokens(1, a.data(), 4), hash_block_tokens(2, a.data(), 4));
}

TEST(BlockPool, CachedBlocksAreEvictableInFreeOrder) {
  BlockPool p(4);
  const int a = p.allocate(), b = p.allocate(), c = p.allocate();
  ASSERT_TRUE(p.register_block(a, 11));
  ASSERT_TRUE(p.register_block(b, 22));
  EXPECT_FALSE(p.register_block(c, 11));  // hash taken: c stays unregistered
  EXPECT_FALSE(p.is_registered(c));
  p.release(b);  // freed first: evicted first
  p.release(a);
  p.release(c);
  p.check_invariants();
  EXPECT_EQ(p.num_free(), 4);
  EXPECT_EQ(p.num_evictable(), 2);
  EXPECT_EQ(p.lookup(11), a);
  // Free blocks go first; then the least recently freed cached block (b).
  EXPECT_NE(p.allocate(), -1);
  EXPECT_NE(p.allocate(), -1);
  EXPECT_EQ(p.num_evictable(), 2);
  EXPECT_EQ(p.allocate(), b);
  EXPECT_EQ(p.lookup(22), -1);  // evicted: its hash is gone
  EXPECT_EQ(p.lookup(11), a);
  EXPECT_EQ(p.acquire_cached(11), a);  // revived
  EXPECT_EQ(p.refcount(a), 1);
  EXPECT_EQ(p.num_free(), 0);
  EXPECT_EQ(p.allocate(), -1);
  p.check_invariants();
}

TEST(PrefixCache, IdenticalPromptHitsAllButTheLastToken) {
  KVManager m(groups({{16, 0}}));
  const auto t = seq_tokens(12);
  compute(m, 1, t, 5);
  EXPECT_EQ(m.num_cached_blocks(0), 3);
  EXPECT_EQ(m.find_cached_prefix(t), 8);  // 12 tokens: 8 cached, the last block is recomputed
  const auto t13 = seq_tokens(13);
  EXPECT_EQ(m.find_cached_prefix(t13), 12);
  m.add_sequence(2);
  ASSERT_TRUE(m.can_admit(t13, 12, 13));
  m.attach_prefix(2, t13, 12);
  EXPECT_EQ(m.length(2), 12);
  EXPECT_EQ(m.block_table(2, 0), m.block_table(1, 0));  // same blocks, shared
  EXPECT_EQ(m.num_free_blocks(0), 13);
  ASSERT_TRUE(m.grow(2, 13));
  EXPECT_EQ(m.num_free_blocks(0), 12);
  EXPECT_EQ(m.prefix_stats().query_tokens, 13);
  EXPECT_EQ(m.prefix_stats().hit_tokens, 12);
  m.check_invariants();
  m.remove_sequence(1);
  m.remove_sequence(2);
  expect_all_free(m);
  EXPECT_EQ(m.find_cached_prefix(t13), 12);  // still cached after every holder left
}

TEST(PrefixCache, SharedAndDifferentPrefixesAndPartialBlocks) {
  KVManager m(groups({{32, 0}}));
  const auto t = seq_tokens(10);  // blocks [0,4) [4,8) full, [8,10) partial
  compute(m, 1, t, 10);
  EXPECT_EQ(m.num_cached_blocks(0), 2);  // the partial block is never cached
  auto shared = seq_tokens(20);
  shared[6] = 7;  // diverges inside block 1
  EXPECT_EQ(m.find_cached_prefix(shared), 4);
  auto longer = seq_tokens(20);
  longer[9] = 7;  // diverges inside the partial block
  EXPECT_EQ(m.find_cached_prefix(longer), 8);
  EXPECT_EQ(m.find_cached_prefix(seq_tokens(20, 101)), 0);  // different from the first token
  EXPECT_EQ(m.find_cached_prefix({100}), 0);
  EXPECT_EQ(m.find_cached_prefix({}), 0);
  // Same tokens in block 1 after a different block 0: the chained hash misses.
  auto other_head = seq_tokens(12);
  other_head[0] = 5;
  EXPECT_EQ(m.find_cached_prefix(other_head), 0);
  // A partial block fills up later and is registered then, incrementally.
  ASSERT_TRUE(m.grow(1, 12));
  const auto t12 = seq_tokens(12);
  m.commit(1, t12, 12);
  EXPECT_EQ(m.num_cached_blocks(0), 3);
  EXPECT_EQ(m.find_cached_prefix(seq_tokens(13)), 12);
  m.remove_sequence(1);
  expect_all_free(m);
}

TEST(PrefixCache, EvictionUnderPressureDropsTheTailFirst) {
  KVManager m(groups({{6, 0}}));
  const auto t = seq_tokens(17);
  compute(m, 1, t, 17);  // 5 blocks, 4 full and cached
  m.remove_sequence(1);
  EXPECT_EQ(m.num_evictable_blocks(0), 4);
  EXPECT_EQ(m.find_cached_prefix(t), 16);
  // Another prompt needs 3 blocks: 2 truly free ones, then the cached tail block is evicted.
  m.add_sequence(2);
  ASSERT_TRUE(m.grow(2, 12));
  m.check_invariants();
  EXPECT_EQ(m.find_cached_prefix(t), 12);  // blocks 0..2 survive
  ASSERT_TRUE(m.grow(2, 24));              // takes everything: the whole cache is gone
  EXPECT_EQ(m.find_cached_prefix(t), 0);
  EXPECT_FALSE(m.grow(2, 25));
  m.remove_sequence(2);
  expect_all_free(m);
}

TEST(PrefixCache, CanAdmitCountsRevivedBlocks) {
  KVManager m(groups({{4, 0}}));
  const auto t = seq_tokens(13);
  compute(m, 1, t, 13);  // 4 blocks, 3 cached
  m.remove_sequence(1);
  EXPECT_EQ(m.find_cached_prefix(t), 12);
  EXPECT_TRUE(m.can_admit(t, 12, 13));   // 3 revived + 1 new = 4
  EXPECT_FALSE(m.can_admit(t, 12, 17));  // 3 revived + 2 new > 4
  EXPECT_TRUE(m.can_admit(t, 0, 13));    // no prefix: 4 new blocks, evicting the cache
  m.add_sequence(2);
  m.attach_prefix(2, t, 12);
  EXPECT_EQ(m.num_evictable_blocks(0), 0);
  ASSERT_TRUE(m.grow(2, 13));
  m.remove_sequence(2);
  expect_all_free(m);
}

TEST(PrefixCache, SlidingGroupNeedsOnlyTheWindow) {
  // Group 0: sliding window 6 with a pool too small to keep old blocks cached for long; group 1:
  // full attention. Hits need all full blocks and only the sliding blocks a query at P can see.
  KVManager m(groups({{6, 6}, {64, 0}}));
  const auto t = seq_tokens(41);
  compute(m, 1, t, 1);  // one token per step, like decode
  // The sliding group recycled its early blocks: those hashes were evicted.
  EXPECT_LT(m.num_cached_blocks(0), 10);
  EXPECT_EQ(m.num_cached_blocks(1), 10);
  // P = 40: the query at 40 reads 35..40, so sliding blocks 8 and 9 must be cached (they are).
  EXPECT_EQ(m.find_cached_prefix(t), 40);
  // Capped below 40 (a hit giving up its last block): the longest P under the cap that every
  // group serves; P = 36 needs sliding blocks 7 and 8, P = 32 blocks 6 and 7 (both cached here).
  EXPECT_EQ(m.find_cached_prefix(t, 39), 36);
  EXPECT_EQ(m.find_cached_prefix(t, 36), 36);
  EXPECT_EQ(m.find_cached_prefix(t, 35), 32);
  EXPECT_EQ(m.find_cached_prefix(t, 3), 0);
  m.add_sequence(2);
  ASSERT_TRUE(m.can_admit(t, 40, 41));
  m.attach_prefix(2, t, 40);
  const auto& sl = m.block_table(2, 0);
  ASSERT_EQ(sl.size(), 10u);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(sl[static_cast<size_t>(i)], -1) << i;  // released
  EXPECT_EQ(sl[8], m.block_table(1, 0)[8]);
  EXPECT_EQ(sl[9], m.block_table(1, 0)[9]);
  m.check_invariants();
  ASSERT_TRUE(m.grow(2, 41));
  m.check_invariants();
  // Shorter prompts whose windows were evicted fall back to an earlier point where every group
  // has the blocks: P = 20 needs sliding blocks 3 and 4, long gone.
  const auto t21 = seq_tokens(21);
  EXPECT_EQ(m.find_cached_prefix(t21), 0);
  m.remove_sequence(1);
  m.remove_sequence(2);
  expect_all_free(m);
}

// Group 0: sliding window `window`, pool `sliding_blocks`; group 1: full attention, 18 blocks.
// Sequence 1 computes 41 tokens one at a time (11 blocks per group) and leaves; sequence 2 then
// takes 10 blocks per group, evicting the oldest-freed cached blocks: in the sliding group the
// early ones (released while sequence 1 ran), in the full group the tail (blocks 9 and 8).
int hit_after_eviction(int window, int sliding_blocks) {
  KVManager m(groups({{sliding_blocks, window}, {18, 0}}));
  const auto t = seq_tokens(41);
  compute(m, 1, t, 1);
  m.remove_sequence(1);
  EXPECT_EQ(m.find_cached_prefix(t), 40);
  m.add_sequence(2);
  EXPECT_TRUE(m.grow(2, 40));
  const int hit = m.find_cached_prefix(t);
  m.remove_sequence(2);
  expect_all_free(m);
  return hit;
}

TEST(PrefixCache, HybridGroupsMeetAtTheLongestCommonPoint) {
  // Full group alone: 32 (blocks 0..7). Sliding group, window 5 (a query at P reads P-4..P: block
  // P/4 - 1 only), pool 14: blocks 0..5 evicted, so P = 32 needs block 7: cached.
  EXPECT_EQ(hit_after_eviction(5, 14), 32);
  // Pool 12: blocks 0..7 evicted. The sliding group alone could serve 40 (block 9) but the full
  // group cannot; every P <= 32 needs an evicted sliding block: no hit at all.
  EXPECT_EQ(hit_after_eviction(5, 12), 0);
  // Window 9 (blocks P/4 - 2 and P/4 - 1), pool 13: blocks 0..6 evicted; 32 needs 6 and 7: miss.
  EXPECT_EQ(hit_after_eviction(9, 13), 0);
  // Window 9, pool 14: blocks 0..5 evicted; 32 needs 6 and 7: hit.
  EXPECT_EQ(hit_after_eviction(9, 14), 32);
}

TEST(PrefixCache, GrowCountsOnlyUnsharedReleasesAsFree) {
  // Window 13: sequence 2 shares sliding blocks 0..2 of sequence 1. When sequence 1 slides past
  // block 0, releasing it frees nothing (sequence 2 still holds it), so a grow that would need that
  // block must fail cleanly instead of running out halfway.
  KVManager m(groups({{5, 13}}));
  const auto t = seq_tokens(16);
  compute(m, 1, t, 16);  // blocks 0..3, free 1
  m.add_sequence(2);
  m.attach_prefix(2, t, 12);
  EXPECT_EQ(m.block_table(2, 0)[0], m.block_table(1, 0)[0]);
  EXPECT_FALSE(m.grow(1, 24));  // needs 2, has 1 free + 0 truly releasable
  EXPECT_EQ(m.length(1), 16);
  m.check_invariants();
  ASSERT_TRUE(m.grow(1, 20));
  m.check_invariants();
  m.remove_sequence(2);
  m.remove_sequence(1);
  expect_all_free(m);
}

TEST(PrefixCache, RollbackMarginWidensTheSlidingRule) {
  // Window 6, max_rollback 5: an attached sequence keeps positions [P - 10, P), as grow would.
  KVManager m(groups({{64, 6}, {64, 0}}, /*rollback=*/5));
  const auto t = seq_tokens(41);
  compute(m, 1, t, 1);
  m.remove_sequence(1);
  EXPECT_EQ(m.find_cached_prefix(t), 40);
  m.add_sequence(2);
  m.attach_prefix(2, t, 40);
  const auto& sl = m.block_table(2, 0);
  EXPECT_EQ(sl[6], -1);
  EXPECT_GE(sl[7], 0);  // (40 - 10) / 4 = 7
  m.check_invariants();
  m.truncate(2, 35);  // rolling back max_rollback tokens stays legal after an attach
  m.check_invariants();
  EXPECT_THROW(m.truncate(2, 30), Error);
  m.remove_sequence(2);
  expect_all_free(m);
}

TEST(PrefixCache, TruncateKeepsValidBlocksCachedAndUnregistersRewrittenOnes) {
  KVManager m(groups({{32, 0}}));
  const auto t = seq_tokens(16);
  compute(m, 1, t, 16);  // 4 blocks, all registered
  const int block3 = m.block_table(1, 0)[3];
  const int block2 = m.block_table(1, 0)[2];
  m.truncate(1, 10);  // drops block 3 (still valid K/V), keeps block 2 partially
  m.check_invariants();
  EXPECT_EQ(m.num_cached_blocks(0), 3);  // blocks 0, 1 and the dropped block 3
  // Block 2 is unregistered (positions 10.. will be rewritten), so nothing past 8 hits.
  EXPECT_EQ(m.find_cached_prefix(seq_tokens(13)), 8);
  // Rewrite positions 10..15 with other tokens and commit: new hashes, new content.
  auto u = seq_tokens(16);
  for (int i = 10; i < 16; ++i) u[static_cast<size_t>(i)] = 900 + i;
  ASSERT_TRUE(m.grow(1, 16));
  m.commit(1, u, 16);
  m.check_invariants();
  EXPECT_EQ(m.block_table(1, 0)[2], block2);
  EXPECT_EQ(m.find_cached_prefix(u), 12);
  // The old block 3 is reachable only through the old chain, which now misses at block 2.
  EXPECT_EQ(m.find_cached_prefix(seq_tokens(17)), 8);
  (void)block3;
  // A committed block shared with another sequence cannot be partially truncated.
  m.add_sequence(2);
  m.attach_prefix(2, u, 12);
  EXPECT_THROW(m.truncate(1, 10), Error);
  EXPECT_EQ(m.length(1), 16);  // refused without changes
  m.truncate(1, 12);           // whole blocks only: fine
  m.check_invariants();
  m.remove_sequence(1);
  m.remove_sequence(2);
  expect_all_free(m);
}

TEST(PrefixCache, AttachRefusesNonFreshSequencesAndMissingBlocks) {
  KVManager m(groups({{16, 0}}));
  const auto t = seq_tokens(9);
  m.add_sequence(1);
  EXPECT_THROW(m.attach_prefix(1, t, 4), Error);  // nothing cached
  EXPECT_THROW(m.attach_prefix(1, t, 3), Error);  // not a block multiple
  m.attach_prefix(1, t, 0);                       // records the query only
  EXPECT_EQ(m.prefix_stats().query_tokens, 9);
  ASSERT_TRUE(m.grow(1, 2));
  EXPECT_THROW(m.attach_prefix(1, t, 0), Error);
  EXPECT_THROW(m.commit(1, t, 3), Error);  // beyond the length
  m.remove_sequence(1);
  expect_all_free(m);
}

TEST(PrefixCache, ThreeGroupsAllMustServeTheHit) {
  // KV-shared layers add no group: the manager only sees groups, here two windows and a full one.
  KVManager m(groups({{64, 5}, {64, 13}, {64, 0}}));
  const auto t = seq_tokens(33);
  compute(m, 1, t, 3);
  EXPECT_EQ(m.find_cached_prefix(t), 32);
  m.add_sequence(2);
  m.attach_prefix(2, t, 32);
  EXPECT_EQ(m.block_table(2, 0)[6], -1);  // window 5: from (32 - 4) / 4 = 7
  EXPECT_GE(m.block_table(2, 0)[7], 0);
  EXPECT_EQ(m.block_table(2, 1)[4], -1);  // window 13: from (32 - 12) / 4 = 5
  EXPECT_GE(m.block_table(2, 1)[5], 0);
  m.check_invariants();
  m.remove_sequence(1);
  m.remove_sequence(2);
  expect_all_free(m);
}

}  // namespace
}  // namespace fc::kv
