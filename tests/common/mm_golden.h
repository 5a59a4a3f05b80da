// Prompts with media soft tokens through gemma4::Model (via Session) against transformers'
// references (tools/refgen): the soft-token runs of a prompt, the Session step over a slice of
// it, and the golden comparisons used by mm_golden_test, audio_lm_golden_test and
// mixed_media_golden_test.
//
// Tolerances as golden_test.cpp: logits 1e-3 · max |logit| per row, merged embeddings
// 1e-4 · max(1, max |e|) over the whole [T, H] tensor.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "spec/session.h"

namespace fc::test {

inline float max_abs(const float* a, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i]));
  return m;
}
inline float max_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Maximal runs [begin, end) of `id` in `ids` (the placeholder runs of a processed prompt).
inline std::vector<std::pair<int, int>> placeholder_runs(const std::vector<int32_t>& ids,
                                                         int32_t id) {
  std::vector<std::pair<int, int>> runs;
  for (int t = 0; t < static_cast<int>(ids.size()); ++t) {
    if (ids[static_cast<size_t>(t)] != id) continue;
    if (!runs.empty() && runs.back().second == t)
      ++runs.back().second;
    else
      runs.emplace_back(t, t + 1);
  }
  return runs;
}

// One media item's soft tokens in the prompt: positions [begin, end) take rows
// [end − begin, H] (host memory, unscaled); `bidi` also passes the run as an image block
// (the model applies it only on the "vision" bidirectional layout).
struct SoftRun {
  int begin = 0, end = 0;
  const float* rows = nullptr;
  bool bidi = false;
};

// A Session step over prompt positions [b, e) of sequence 1 with the parts of the runs it holds.
struct MediaStep {
  Session::Step step;
  Session::StepMedia media;
};
inline MediaStep media_step(const std::vector<int32_t>& ids, const std::vector<SoftRun>& runs,
                            int b, int e, int64_t H) {
  MediaStep ms;
  ms.step.id = 1;
  ms.step.tokens.assign(ids.begin() + b, ids.begin() + e);
  for (const SoftRun& r : runs) {
    const int lo = std::max(r.begin, b), hi = std::min(r.end, e);
    if (lo < hi)
      ms.media.soft_tokens.push_back(
          {lo, hi - lo, r.rows + static_cast<size_t>(lo - r.begin) * static_cast<size_t>(H)});
    if (r.bidi && r.begin < e && r.end > b) ms.media.bidi_blocks.emplace_back(r.begin, r.end);
  }
  return ms;
}

// Prefills the whole prompt as sequence 1 of `s` (one step, logits at every row, the residual
// entering layer 0 captured) and expects the merged embeddings [T, H] and the logits [T, V] to
// match the references. Returns the last row of logits (where greedy decoding starts).
inline std::vector<float> expect_prefill_matches(Session& s, const std::vector<int32_t>& ids,
                                                 const std::vector<SoftRun>& runs,
                                                 const std::vector<float>& want_merged,
                                                 const std::vector<float>& want_logits, int64_t H,
                                                 int64_t V, const std::string& what) {
  const int T = static_cast<int>(ids.size());
  const size_t n = static_cast<size_t>(T * H);
  EXPECT_EQ(want_merged.size(), n) << what;
  EXPECT_EQ(want_logits.size(), static_cast<size_t>(T * V)) << what;
  if (want_merged.size() != n || want_logits.size() != static_cast<size_t>(T * V)) return {};
  s.add(1);
  MediaStep ms = media_step(ids, runs, 0, T, H);
  for (int t = 0; t < T; ++t) ms.step.logit_rows.push_back(t), ms.step.hidden_rows.push_back(t);
  gemma4::ForwardOutput out;
  s.run({ms.step}, out, {0}, false, {ms.media});
  const float merged_err = max_diff(out.captured[0].data(), want_merged.data(), n);
  EXPECT_LE(merged_err, 1e-4f * std::max(1.0f, max_abs(want_merged.data(), n)))
      << what << " merged embeddings";
  float logit_err = 0;
  for (int t = 0; t < T; ++t) {
    const float* g = out.logits.data() + t * V;
    const float* w = want_logits.data() + t * V;
    const float d = max_diff(g, w, static_cast<size_t>(V));
    const float m = max_abs(w, static_cast<size_t>(V));
    logit_err = std::max(logit_err, d / m);
    EXPECT_LE(d, 1e-3f * m) << what << " logits at " << t;
  }
  std::printf("%s: T %d, merged max |Δ| %.2e, logits max |Δ|/max|logit| %.2e\n", what.c_str(), T,
              static_cast<double>(merged_err), static_cast<double>(logit_err));
  return std::vector<float>(out.logits.end() - V, out.logits.end());
}

// Prefills the whole prompt as sequence 1 of `s` in chunks ending at `cuts` (non-decreasing,
// the last = T; empty chunks are skipped) and expects every row's logits to match want_logits
// [T, V]. Returns each chunk's token count and whether it carried soft tokens or an image block.
struct ChunkInfo {
  int tokens = 0;
  bool media = false;
};
inline std::vector<ChunkInfo> expect_chunked_prefill_matches(
    Session& s, const std::vector<int32_t>& ids, const std::vector<SoftRun>& runs,
    const std::vector<int>& cuts, const std::vector<float>& want_logits, int64_t H, int64_t V,
    const std::string& what) {
  std::vector<ChunkInfo> chunks;
  EXPECT_EQ(want_logits.size(), ids.size() * static_cast<size_t>(V)) << what;
  EXPECT_TRUE(!cuts.empty() && cuts.back() == static_cast<int>(ids.size())) << what;
  if (want_logits.size() != ids.size() * static_cast<size_t>(V)) return chunks;
  s.add(1);
  int b = 0;
  for (int c : cuts) {
    if (c <= b) continue;
    MediaStep ms = media_step(ids, runs, b, c, H);
    chunks.push_back({c - b, !ms.media.soft_tokens.empty() || !ms.media.bidi_blocks.empty()});
    for (int t = 0; t < c - b; ++t) ms.step.logit_rows.push_back(t);
    gemma4::ForwardOutput out;
    s.run({ms.step}, out, {}, false, {ms.media});
    for (int t = b; t < c; ++t) {
      const float* g = out.logits.data() + (t - b) * V;
      const float* w = want_logits.data() + t * V;
      EXPECT_LE(max_diff(g, w, static_cast<size_t>(V)), 1e-3f * max_abs(w, static_cast<size_t>(V)))
          << what << " chunked logits at " << t << " (chunk [" << b << ", " << c << "))";
    }
    b = c;
  }
  return chunks;
}

// Greedy decoding of sequence 1 on the KV cache from the prefill's last logits row: each argmax
// must be greedy[g]; with `greedy_logits` ([G, V]) each row must also match within tolerance.
inline void expect_greedy(Session& s, std::vector<float> row, const std::vector<int32_t>& greedy,
                          const std::vector<float>* greedy_logits, int64_t V,
                          const std::string& what) {
  gemma4::ForwardOutput out;
  for (size_t g = 0; g < greedy.size(); ++g) {
    ASSERT_EQ(row.size(), static_cast<size_t>(V)) << what;
    if (greedy_logits) {
      const float* w = greedy_logits->data() + g * static_cast<size_t>(V);
      EXPECT_LE(max_diff(row.data(), w, static_cast<size_t>(V)),
                1e-3f * max_abs(w, static_cast<size_t>(V)))
          << what << " greedy logits " << g;
    }
    const int32_t tok =
        static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
    ASSERT_EQ(tok, greedy[g]) << what << " greedy step " << g;
    Session::Step d;
    d.id = 1;
    d.tokens = {tok};
    d.logit_rows = {0};
    s.run({d}, out);
    row = out.logits;
  }
}

}  // namespace fc::test
