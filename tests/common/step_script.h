// A fixed script of forward steps (prefill chunks, single-token decode over several batch sizes,
// speculative-verification-sized steps with hidden-state capture) run on two models over the same
// checkpoint, comparing every step's logits and hidden states: the padded bucket layout and CUDA
// graph replay against plain eager execution (tests/golden/padded_batch_test.cpp,
// tests/gpu/gpu_graph_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "spec/session.h"

namespace fc::test {

inline double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0, m = 1e-6;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
    m = std::max(m, static_cast<double>(std::fabs(b[i])));
  }
  return d / m;
}

// Runs the script on `got` and `want` (their own sessions over models of the same checkpoint) and
// expects every output within rel_tol of the reference (relative to its largest magnitude) and
// the same argmax per logit row. Returns the number of compared steps.
inline int compare_step_script(gemma4::Model& got, gemma4::Model& want, Backend& be_got,
                               Backend& be_want, double rel_tol) {
  SessionOptions so;
  so.max_seqs = 16;
  so.max_tokens = 4096;
  so.max_rollback = 8;
  so.max_step_tokens = 512;
  Session sg(got, be_got, so), sw(want, be_want, so);
  const int V = got.config().vocab_size;
  const int L = got.config().num_hidden_layers;
  auto tok = [&](int s, int i) { return static_cast<int32_t>(3 + (s * 131 + i * 17) % (V - 3)); };
  int steps = 0;
  auto run = [&](const std::vector<Session::Step>& st, const std::vector<int>& cap, bool fin,
                 const std::string& what) {
    gemma4::ForwardOutput og, ow;
    sg.run(st, og, cap, fin);
    sw.run(st, ow, cap, fin);
    ++steps;
    ASSERT_EQ(og.n_logit_rows, ow.n_logit_rows) << what;
    EXPECT_LE(max_rel_diff(og.logits, ow.logits), rel_tol) << what;
    for (int r = 0; r < ow.n_logit_rows; ++r) {
      const float* a = og.logits.data() + static_cast<size_t>(r) * V;
      const float* b = ow.logits.data() + static_cast<size_t>(r) * V;
      EXPECT_EQ(std::max_element(a, a + V) - a, std::max_element(b, b + V) - b)
          << what << " row " << r;
    }
    EXPECT_LE(max_rel_diff(og.final_hidden, ow.final_hidden), rel_tol) << what << " final hidden";
    ASSERT_EQ(og.captured.size(), ow.captured.size()) << what;
    for (size_t c = 0; c < ow.captured.size(); ++c)
      EXPECT_LE(max_rel_diff(og.captured[c], ow.captured[c]), rel_tol) << what << " capture " << c;
  };
  // Prompts of different lengths (eager: more than kGraphMaxTokens tokens each).
  const int n = 11;
  std::vector<int> len(n);
  for (int s = 0; s < n; ++s) {
    sg.add(s);
    sw.add(s);
    len[static_cast<size_t>(s)] = 9 + 3 * s;
    Session::Step st{s, {}, {len[static_cast<size_t>(s)] - 1}, {}};
    for (int i = 0; i < len[static_cast<size_t>(s)]; ++i) st.tokens.push_back(tok(s, i));
    run({st}, {}, false, "prefill " + std::to_string(s));
  }
  // Decode at several batch sizes (buckets 1, 2, 3, 4, 6, 8, 12), twice each (the second replays).
  for (int batch : {1, 2, 3, 5, 7, 11, 1, 2, 3, 5, 7, 11}) {
    std::vector<Session::Step> st;
    for (int s = 0; s < batch; ++s) {
      st.push_back({s, {tok(s, len[static_cast<size_t>(s)])}, {0}, {0}});
      ++len[static_cast<size_t>(s)];
    }
    run(st, {}, true, "decode batch " + std::to_string(batch));
  }
  // Verification-sized steps: 1..5 tokens per sequence, all rows' logits, captures at 1 and L,
  // then a rollback (the rejected drafts) before the next step.
  for (int round = 0; round < 3; ++round) {
    std::vector<Session::Step> st;
    for (int s = 0; s < 4; ++s) {
      Session::Step x{s, {}, {}, {}};
      const int k = 1 + (s + round) % 5;
      for (int i = 0; i < k; ++i) {
        x.tokens.push_back(tok(s, len[static_cast<size_t>(s)] + i));
        x.logit_rows.push_back(i);
        x.hidden_rows.push_back(i);
      }
      st.push_back(x);
    }
    run(st, {1, L}, true, "verify round " + std::to_string(round));
    for (int s = 0; s < 4; ++s) {
      const int k = 1 + (s + round) % 5;
      const int keep = len[static_cast<size_t>(s)] + std::max(1, k / 2);
      sg.truncate(s, keep);
      sw.truncate(s, keep);
      len[static_cast<size_t>(s)] = keep;
    }
  }
  return steps;
}

}  // namespace fc::test
