// A fake "model" for scheduler tests: it writes, for every computed position p, a value naming
// the whole prefix tokens[0..p] into fake K/V slots through the block tables, and before sampling
// checks every slot each query reads (its window in sliding groups, everything before it in full
// groups) still holds the value of this request's prefix. Shared, evicted, released or preempted
// blocks that would give a request wrong K/V fail the check. Sampled tokens are a function of the
// prefix, so any schedule must generate the same tokens as running each request alone.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "engine/scheduler.h"
#include "kv/kv_manager.h"

namespace fc::test {

inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// prefix_values(t)[p]: names t[0..p] (and so the K/V a real model would store at p).
inline std::vector<uint64_t> prefix_values(const std::vector<int32_t>& t, size_t n) {
  std::vector<uint64_t> v(n);
  uint64_t h = 1;
  for (size_t p = 0; p < n; ++p) v[p] = h = mix(h ^ (static_cast<uint64_t>(t[p]) << 20 | p));
  return v;
}

inline int32_t sample_from(uint64_t value, int vocab) {
  return static_cast<int32_t>(mix(value) % static_cast<uint64_t>(vocab));
}

// The tokens a request ends with when nothing else runs: prompt, then max_tokens samples.
inline std::vector<int32_t> reference_generation(std::vector<int32_t> t, int max_tokens,
                                                 int vocab) {
  for (int i = 0; i < max_tokens; ++i)
    t.push_back(sample_from(prefix_values(t, t.size()).back(), vocab));
  return t;
}

class FakeModel {
 public:
  FakeModel(const kv::KVManager& kv, int vocab) : kv_(kv), vocab_(vocab) {
    for (int g = 0; g < kv.num_groups(); ++g)
      slots_.emplace_back(static_cast<size_t>(kv.num_blocks(g)) * kv.config().block_size, 0);
  }

  // Runs one step: writes every scheduled position, then checks every read. `sampled` gets the
  // token of each request that got logits.
  void run(const Scheduler& s, const SchedulerOutput& out,
           std::unordered_map<RequestId, int32_t>& sampled) {
    std::unordered_map<RequestId, std::vector<int32_t>> emitted;
    run(s, out, emitted);
    sampled.clear();
    for (const auto& [id, e] : emitted) sampled[id] = e.back();
  }
  // The same with draft tokens verified greedily: `emitted` gets, per request with logits, the
  // accepted drafts followed by the model's own token (correction or bonus).
  void run(const Scheduler& s, const SchedulerOutput& out,
           std::unordered_map<RequestId, std::vector<int32_t>>& emitted) {
    const int bs = kv_.config().block_size;
    emitted.clear();
    std::vector<std::vector<uint64_t>> vals;
    std::vector<std::vector<int32_t>> seqs;
    for (const ScheduledSeq& q : out.seqs) {
      std::vector<int32_t> t = s.tokens(q.id);
      const int plain = static_cast<int>(t.size());
      const std::vector<int32_t>& d = s.drafts(q.id);
      t.insert(t.end(), d.begin(), d.begin() + q.num_drafts);
      seqs.push_back(t);
      EXPECT_EQ(q.pos0, s.num_computed(q.id));
      EXPECT_LE(q.pos0 + q.num_tokens, static_cast<int>(t.size()));
      EXPECT_EQ(q.needs_logits, q.pos0 + q.num_tokens - q.num_drafts == plain);
      EXPECT_EQ(kv_.length(q.id), q.pos0 + q.num_tokens);
      vals.push_back(prefix_values(t, static_cast<size_t>(q.pos0 + q.num_tokens)));
      for (int g = 0; g < kv_.num_groups(); ++g) {
        const std::vector<int32_t>& table = kv_.block_table(q.id, g);
        for (int p = q.pos0; p < q.pos0 + q.num_tokens; ++p) {
          const int32_t b = table.at(static_cast<size_t>(p / bs));
          EXPECT_GE(b, 0) << "write to a released block";
          if (b >= 0) slot(g, b, p % bs) = vals.back()[static_cast<size_t>(p)];
        }
      }
    }
    for (size_t i = 0; i < out.seqs.size(); ++i) {
      const ScheduledSeq& q = out.seqs[i];
      const int end = q.pos0 + q.num_tokens;
      for (int g = 0; g < kv_.num_groups(); ++g) {
        const int w = kv_.config().groups[static_cast<size_t>(g)].sliding_window;
        const int lo = w > 0 ? std::max(0, q.pos0 - (w - 1)) : 0;  // what the first query sees
        const std::vector<int32_t>& table = kv_.block_table(q.id, g);
        for (int p = lo; p < end; ++p) {
          const int32_t b = table.at(static_cast<size_t>(p / bs));
          ASSERT_GE(b, 0) << "request " << q.id << " reads released position " << p;
          ASSERT_EQ(slot(g, b, p % bs), vals[i][static_cast<size_t>(p)])
              << "request " << q.id << " group " << g << " position " << p << " holds wrong K/V";
        }
      }
      ++reads_checked_;
      if (!q.needs_logits) continue;
      std::vector<int32_t>& e = emitted[q.id];
      for (int r = end - 1 - q.num_drafts; r < end; ++r) {
        const int32_t own = sample_from(vals[i][static_cast<size_t>(r)], vocab_);
        e.push_back(own);
        if (r + 1 >= end || seqs[i][static_cast<size_t>(r + 1)] != own) break;  // draft rejected
      }
    }
  }
  int64_t reads_checked() const { return reads_checked_; }

 private:
  uint64_t& slot(int g, int32_t block, int i) {
    return slots_[static_cast<size_t>(g)]
                 [static_cast<size_t>(block) * kv_.config().block_size + static_cast<size_t>(i)];
  }
  const kv::KVManager& kv_;
  int vocab_;
  std::vector<std::vector<uint64_t>> slots_;  // [group][block * B + slot]
  int64_t reads_checked_ = 0;
};

}  // namespace fc::test

namespace fc::test {

// One engine iteration: schedule, run the fake model, record the step, append sampled tokens and
// finish requests that reached max_tokens (their final tokens go to `done`). Returns the plan.
inline SchedulerOutput engine_step(Scheduler& s, FakeModel& model,
                                   const std::unordered_map<RequestId, int>& max_tokens,
                                   std::unordered_map<RequestId, std::vector<int32_t>>& done) {
  SchedulerOutput out = s.schedule();
  std::unordered_map<RequestId, int32_t> sampled;
  model.run(s, out, sampled);
  s.on_step_done(out);
  for (const ScheduledSeq& q : out.seqs) {
    auto it = sampled.find(q.id);
    if (it == sampled.end()) continue;
    s.append_token(q.id, it->second);
    const int generated = static_cast<int>(s.tokens(q.id).size()) - s.num_prompt_tokens(q.id);
    if (generated == max_tokens.at(q.id)) {
      s.finish(q.id);
      done[q.id] = s.tokens(q.id);
    }
  }
  return out;
}

}  // namespace fc::test
