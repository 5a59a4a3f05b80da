// The scheduler's multimodal rules without a model: the encoder budget per step, encoder-cache
// hits, sharing and eviction, no_split runs (bidirectional image blocks) never straddling a
// chunk, runs that may span chunks, prefix-cache block keys (same tokens, other image: no hit),
// preemption releasing cache references, and add()'s errors.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "core/error.h"
#include "engine/encoder_cache.h"
#include "engine/scheduler.h"
#include "kv/kv_manager.h"

namespace fc {
namespace {

constexpr int kB = 4;
constexpr int32_t kImg = 900;

kv::ManagerConfig kv_config(int blocks) {
  kv::ManagerConfig c;
  c.block_size = kB;
  c.groups.push_back({blocks, 0});
  return c;
}

SchedulerConfig cfg(int budget, int64_t enc_budget, int64_t enc_cache) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.max_num_seqs = 8;
  c.max_model_len = 4096;
  c.encoder_compute_budget = enc_budget;
  c.encoder_cache_size = enc_cache;
  return c;
}

// text(pre) + boi + n placeholders + eoi + text(post); the run starts at pre + 1.
std::vector<int32_t> mm_prompt(int pre, int n, int post, int32_t base = 100) {
  std::vector<int32_t> t;
  for (int i = 0; i < pre; ++i) t.push_back(base + i);
  t.push_back(1);
  for (int i = 0; i < n; ++i) t.push_back(kImg);
  t.push_back(2);
  for (int i = 0; i < post; ++i) t.push_back(base + 500 + i);
  return t;
}

// Runs steps (marking everything computed, sampling token 7) until id has computed its prompt.
void run_prefill(Scheduler& s, RequestId id, std::vector<SchedulerOutput>* log = nullptr) {
  for (int guard = 0; guard < 100 && s.num_computed(id) < s.num_prompt_tokens(id); ++guard) {
    SchedulerOutput o = s.schedule();
    s.on_step_done(o);
    for (const ScheduledSeq& q : o.seqs)
      if (q.needs_logits) s.append_token(q.id, 7);
    if (log) log->push_back(std::move(o));
  }
}

const ScheduledSeq* find(const SchedulerOutput& o, RequestId id) {
  for (const ScheduledSeq& q : o.seqs)
    if (q.id == id) return &q;
  return nullptr;
}

TEST(SchedulerMm, NoSplitRunIsNeverStraddled) {
  kv::KVManager kv(kv_config(64));
  Scheduler s(cfg(32, 100, 200), kv);
  // Run at [11, 35): a 32-token chunk from 0 would end inside it.
  s.add(1, mm_prompt(10, 24, 8), 4, false, {{11, 24, 0xabc, true}});
  SchedulerOutput o = s.schedule();
  ASSERT_EQ(o.seqs.size(), 1u);
  EXPECT_EQ(o.seqs[0].num_tokens, 11);  // stops before the run
  EXPECT_TRUE(o.seqs[0].encode.empty());
  s.on_step_done(o);
  o = s.schedule();
  EXPECT_EQ(o.seqs[0].pos0, 11);
  EXPECT_EQ(o.seqs[0].num_tokens, 32);  // the whole run in one step
  EXPECT_EQ(o.seqs[0].encode, std::vector<int>{0});
  s.on_step_done(o);
}

TEST(SchedulerMm, SplittableRunSpansChunksAndIsEncodedOnce) {
  kv::KVManager kv(kv_config(64));
  Scheduler s(cfg(16, 100, 200), kv);
  s.add(1, mm_prompt(10, 24, 8), 4, false, {{11, 24, 0xabc, false}});
  std::vector<SchedulerOutput> log;
  run_prefill(s, 1, &log);
  int encodes = 0, steps_touching = 0;
  for (const SchedulerOutput& o : log) {
    const ScheduledSeq* q = find(o, 1);
    if (!q) continue;
    encodes += static_cast<int>(q->encode.size());
    steps_touching += q->pos0 < 35 && q->pos0 + q->num_tokens > 11;
  }
  EXPECT_EQ(encodes, 1);
  EXPECT_GE(steps_touching, 2);
  EXPECT_EQ(s.stats().encoder_cache_queries, 1);
  EXPECT_EQ(s.stats().encoder_cache_hits, 0);
}

TEST(SchedulerMm, EncoderBudgetDefersTheSecondImage) {
  kv::KVManager kv(kv_config(128));
  Scheduler s(cfg(256, 40, 200), kv);
  s.add(1, mm_prompt(2, 30, 2), 4, false, {{3, 30, 0x1, true}});
  s.add(2, mm_prompt(2, 30, 2, 300), 4, false, {{3, 30, 0x2, true}});
  SchedulerOutput o = s.schedule();
  ASSERT_EQ(o.seqs.size(), 2u);
  EXPECT_EQ(find(o, 1)->encode.size(), 1u);
  EXPECT_EQ(find(o, 2)->num_tokens, 3);  // cut before its image: 30 + 30 > 40
  EXPECT_TRUE(find(o, 2)->encode.empty());
  s.on_step_done(o);
  o = s.schedule();
  EXPECT_EQ(find(o, 2)->encode.size(), 1u);
}

TEST(SchedulerMm, SameImageHitsTheEncoderCacheAndThePrefixCache) {
  kv::KVManager kv(kv_config(128));
  Scheduler s(cfg(256, 100, 200), kv);
  const std::vector<int32_t> p = mm_prompt(5, 30, 9);
  s.add(1, p, 2, false, {{6, 30, 0x77, true}});
  run_prefill(s, 1);
  s.finish(1);
  // Same tokens, same image: prefix hit and no encode. Same tokens, other image: neither.
  s.add(2, p, 2, false, {{6, 30, 0x77, true}});
  s.add(3, p, 2, false, {{6, 30, 0x88, true}});
  SchedulerOutput o = s.schedule();
  const ScheduledSeq* a = find(o, 2);
  const ScheduledSeq* b = find(o, 3);
  ASSERT_TRUE(a && b);
  EXPECT_GT(s.num_cached_prompt_tokens(2), 30);
  EXPECT_EQ(s.num_cached_prompt_tokens(3), 4);  // only the first text block is shared
  EXPECT_TRUE(a->encode.empty());
  EXPECT_EQ(b->encode.size(), 1u);
  s.on_step_done(o);
  EXPECT_EQ(s.stats().encoder_cache_hits, 0);  // request 2's run was served by the prefix cache
  // A third request with the image at another offset reuses the cached encoder output.
  s.add(4, mm_prompt(2, 30, 9, 600), 2, false, {{3, 30, 0x77, true}});
  o = s.schedule();
  EXPECT_TRUE(find(o, 4)->encode.empty());
  EXPECT_EQ(s.stats().encoder_cache_hits, 1);
}

TEST(SchedulerMm, UnreferencedOutputsAreEvictedForNewOnes) {
  kv::KVManager kv(kv_config(256));
  Scheduler s(cfg(256, 100, 70), kv);  // room for two images of 30
  for (RequestId id = 1; id <= 3; ++id) {
    s.add(id, mm_prompt(2, 30, 2, static_cast<int32_t>(100 * id)), 1, false,
          {{3, 30, static_cast<uint64_t>(id), true}});
    std::vector<SchedulerOutput> log;
    run_prefill(s, id, &log);
    s.finish(id);
    if (id == 3) {
      ASSERT_FALSE(log.empty());
      EXPECT_EQ(log.front().evicted, std::vector<uint64_t>{1});  // oldest unreferenced
    }
  }
  EXPECT_FALSE(s.encoder_cache().contains(1));
  EXPECT_TRUE(s.encoder_cache().contains(2) && s.encoder_cache().contains(3));
  s.encoder_cache().check_invariants();
}

TEST(SchedulerMm, ReferencedOutputsAreNotEvicted) {
  EncoderCache c(100);
  c.allocate(1, 60);
  c.add_ref(1, 10);
  EXPECT_FALSE(c.can_allocate(50));
  c.release(10);
  EXPECT_TRUE(c.can_allocate(50));
  EXPECT_EQ(c.allocate(2, 50), std::vector<uint64_t>{1});
  c.check_invariants();
}

TEST(SchedulerMm, AddRefusesRunsThatCanNeverBeScheduled) {
  kv::KVManager kv(kv_config(256));
  Scheduler s(cfg(32, 100, 200), kv);
  try {
    s.add(1, mm_prompt(2, 40, 2), 4, false, {{3, 40, 0x1, true}});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Chunked MM input disabled but max_tokens_per_mm_item=40 "
                                         "is larger than max_num_batched_tokens=32"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(s.add(2, mm_prompt(2, 120, 2), 4, false, {{3, 120, 0x1, false}}), Error);
  EXPECT_THROW(s.add(3, mm_prompt(2, 10, 2), 4, false, {{3, 10, 0, false}}), Error);    // key 0
  EXPECT_THROW(s.add(4, mm_prompt(2, 10, 2), 4, false, {{3, 40, 0x1, false}}), Error);  // past end
}

TEST(SchedulerMm, PreemptionReleasesAndRecomputeHitsTheEncoderCache) {
  // 20 blocks of 4: two requests of 16 prompt + 40 generated tokens (14 blocks each) are both
  // admitted but cannot both finish; the newest is preempted while decoding.
  kv::KVManager kv(kv_config(20));
  Scheduler s(cfg(256, 100, 200), kv);
  s.add(1, mm_prompt(2, 10, 2), 40, false, {{3, 10, 0x1, true}});
  s.add(2, mm_prompt(2, 10, 2, 300), 40, false, {{3, 10, 0x2, true}});
  bool preempted = false;
  int encodes_of_2 = 0;
  for (int step = 0; step < 400 && s.has_unfinished(); ++step) {
    SchedulerOutput o = s.schedule();
    preempted |= !o.preempted.empty();
    if (const ScheduledSeq* q = find(o, 2)) encodes_of_2 += static_cast<int>(q->encode.size());
    s.on_step_done(o);
    for (const ScheduledSeq& q : o.seqs) {
      if (!q.needs_logits) continue;
      if (static_cast<int>(s.tokens(q.id).size()) - s.num_prompt_tokens(q.id) >= 39)
        s.finish(q.id);
      else
        s.append_token(q.id, 7);
    }
    s.encoder_cache().check_invariants();
  }
  EXPECT_TRUE(preempted);
  EXPECT_EQ(encodes_of_2, 1);  // the recompute found the output still cached
  EXPECT_FALSE(s.has_unfinished());
}

}  // namespace
}  // namespace fc
