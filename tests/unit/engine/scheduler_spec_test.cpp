// Speculative decoding in the scheduler, without a model: drafts ride along with the newest
// token, the KV is rolled back over rejected drafts (sliding windows included), only verified
// tokens reach the prefix cache, and under any mix of right and wrong drafts, preemption and
// prefix caching every request ends with exactly the tokens it generates alone.
#include <gtest/gtest.h>

#include <numeric>

#include "engine/scheduler.h"
#include "fake_model.h"

namespace fc {
namespace {

constexpr int kB = 4;
constexpr int kVocab = 50;

kv::ManagerConfig kv_config(int full, int window, int sliding, int rollback) {
  kv::ManagerConfig c;
  c.block_size = kB;
  if (window > 0) c.groups.push_back({sliding, window});
  c.groups.push_back({full, 0});
  c.max_rollback = rollback;
  return c;
}

// Drafts for a decoding request: the true continuation, with each draft replaced by a wrong
// token with probability `wrong` (deterministic in the request state).
std::vector<int32_t> fake_drafts(const std::vector<int32_t>& tokens, int k, double wrong) {
  std::vector<int32_t> t = tokens, d;
  for (int i = 0; i < k; ++i) {
    int32_t next = test::sample_from(test::prefix_values(t, t.size()).back(), kVocab);
    const uint64_t r = test::mix(t.size() * 7919 + static_cast<uint64_t>(next) * 31 + i);
    if (static_cast<double>(r % 1000) / 1000.0 < wrong) next = (next + 1 + r % 7) % kVocab;
    d.push_back(next);
    t.push_back(next);
  }
  return d;
}

struct DriveResult {
  int steps = 0;
  int64_t drafted = 0, accepted = 0;
};

DriveResult drive(Scheduler& s, kv::KVManager& kv, test::FakeModel& m,
                  const std::unordered_map<RequestId, int>& max_tokens,
                  std::unordered_map<RequestId, std::vector<int32_t>>& done, int k, double wrong) {
  DriveResult run;
  while (s.has_unfinished() && run.steps < 20000) {
    for (const auto& [id, mt] : max_tokens)
      if (s.decode_ready(id)) s.set_drafts(id, fake_drafts(s.tokens(id), k, wrong));
    SchedulerOutput out = s.schedule();
    std::unordered_map<RequestId, std::vector<int32_t>> emitted;
    m.run(s, out, emitted);
    s.on_step_done(out);
    for (const ScheduledSeq& q : out.seqs) {
      auto it = emitted.find(q.id);
      if (it == emitted.end()) continue;
      std::vector<int32_t> e = it->second;
      run.drafted += q.num_drafts;
      run.accepted += static_cast<int>(e.size()) - 1;
      const int generated = static_cast<int>(s.tokens(q.id).size()) - s.num_prompt_tokens(q.id);
      const int left = max_tokens.at(q.id) - generated;
      if (static_cast<int>(e.size()) >= left) {
        e.resize(static_cast<size_t>(left));
        std::vector<int32_t> final = s.tokens(q.id);
        final.insert(final.end(), e.begin(), e.end());
        s.finish(q.id);
        done[q.id] = final;
      } else {
        if (q.num_drafts > 0) s.accept_drafts(q.id, static_cast<int>(e.size()) - 1);
        s.append_token(q.id, e.back());
      }
    }
    kv.check_invariants();
    ++run.steps;
    if (::testing::Test::HasFatalFailure()) break;
  }
  return run;
}

TEST(SchedulerSpec, DraftsRideWithTheNewestTokenAndRollBack) {
  kv::KVManager kv(kv_config(64, 6, 64, 4));
  SchedulerConfig sc;
  sc.max_num_batched_tokens = 64;
  Scheduler s(sc, kv);
  std::vector<int32_t> p(9);
  std::iota(p.begin(), p.end(), 3);
  s.add(1, p, 20);
  SchedulerOutput out = s.schedule();  // prefill
  s.on_step_done(out);
  s.append_token(1, 7);
  ASSERT_TRUE(s.decode_ready(1));
  s.set_drafts(1, {11, 12, 13});
  out = s.schedule();
  ASSERT_EQ(out.seqs.size(), 1u);
  EXPECT_EQ(out.seqs[0].pos0, 9);
  EXPECT_EQ(out.seqs[0].num_tokens, 4);
  EXPECT_EQ(out.seqs[0].num_drafts, 3);
  EXPECT_TRUE(out.seqs[0].needs_logits);
  EXPECT_EQ(kv.length(1), 13);
  s.on_step_done(out);
  s.accept_drafts(1, 1);  // 11 accepted, 12 and 13 rejected
  EXPECT_EQ(kv.length(1), 11);
  EXPECT_EQ(s.tokens(1).back(), 11);
  s.append_token(1, 21);
  EXPECT_EQ(s.tokens(1).size(), 12u);
  EXPECT_TRUE(s.drafts(1).empty());
  // Drafts never exceed max_tokens or the budget.
  s.set_drafts(1, std::vector<int32_t>(30, 5));
  EXPECT_EQ(static_cast<int>(s.drafts(1).size()), 20 - 3);
  kv.check_invariants();
}

TEST(SchedulerSpec, AnyDraftsGiveTheTokensOfRunningAlone) {
  struct Case {
    int k;
    double wrong;
    int full_blocks;
    bool caching;
  };
  for (const Case c : {Case{1, 0.0, 200, true}, Case{3, 0.3, 200, true}, Case{5, 0.6, 20, true},
                       Case{7, 1.0, 24, false}, Case{4, 0.2, 16, true}}) {
    kv::KVManager kv(kv_config(c.full_blocks, 6, 200, c.k + 2));
    SchedulerConfig sc;
    sc.max_num_batched_tokens = 24;
    sc.max_num_seqs = 6;
    sc.enable_prefix_caching = c.caching;
    Scheduler s(sc, kv);
    test::FakeModel m(kv, kVocab);
    std::unordered_map<RequestId, int> max_tokens;
    std::unordered_map<RequestId, std::vector<int32_t>> expected, done;
    for (RequestId id = 1; id <= 16; ++id) {
      std::vector<int32_t> p(static_cast<size_t>(3 + id * 5 % 17));
      std::iota(p.begin(), p.end(), static_cast<int32_t>(id % 3));  // shared prefixes
      max_tokens[id] = 4 + static_cast<int>(id * 7 % 23);
      expected[id] = test::reference_generation(p, max_tokens[id], kVocab);
      s.add(id, p, max_tokens[id]);
    }
    const DriveResult r = drive(s, kv, m, max_tokens, done, c.k, c.wrong);
    EXPECT_FALSE(s.has_unfinished()) << "k " << c.k;
    for (const auto& [id, want] : expected) EXPECT_EQ(done[id], want) << "k " << c.k << " " << id;
    for (int g = 0; g < kv.num_groups(); ++g) EXPECT_EQ(kv.num_free_blocks(g), kv.num_blocks(g));
    EXPECT_GT(r.drafted, 0);
    if (c.wrong == 0.0) {
      EXPECT_EQ(r.accepted, r.drafted);
    }
    if (c.wrong == 1.0) {
      EXPECT_EQ(r.accepted, 0);
    }
    if (c.full_blocks < 64) {
      EXPECT_GT(s.stats().num_preemptions, 0) << "k " << c.k;
    }
  }
}

}  // namespace
}  // namespace fc
