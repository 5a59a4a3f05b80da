// Golden test of the MTP assistant drafter (spec/mtp.h) against transformers 5.23 (fp32, eager):
// tools/refgen/make_mtp_fixture.py drives Gemma4AssistantForCausalLM with HF's own candidate
// generator on the mini-e2b target and stores the logits of k = 3 chained draft steps and the
// greedy drafts, for a dense-head assistant (mtp-mini) and a centroid one (mtp-mini-centroids).
//
// The target prefills each prompt here through a Session (paged KV, block size 4, so the sliding
// group releases blocks), the drafter observes its post-final-norm hidden rows, and propose()
// drafts from prompt + the target's greedy token. Three ways: both prompts in one batch; prompt 0
// as two target forwards (9 + 4 tokens, the second observed as 4 verified rows); and a target KV
// manager without the extra sliding history (window clamped to the resident KV, with a warning).
//
// Tolerances: logits max |diff| <= 1e-3 · max |logit| per draft step (fp32 everywhere; HF sums in
// another order). Drafts identical (the fixture's smallest top1-top2 margin is 0.042).
#include <gtest/gtest.h>

#include "tests/common/golden_io.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "model/gemma4/model.h"
#include "spec/mtp.h"
#include "spec/session.h"

namespace fc {
namespace {

using test::read_f32;
using test::read_ids;

namespace fs = std::filesystem;
const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";
constexpr int kK = 3;

struct Golden {
  std::vector<int32_t> ids, drafts;
  int32_t next = -1;
  std::vector<float> logits;  // [k, V]
  std::vector<float> hidden;  // [H_t] target post-final-norm state at the last prompt position
};

struct Target {
  ThreadPool pool{2};
  cpu::CpuBackend be{pool};
  std::unique_ptr<gemma4::Model> model;
  explicit Target(const std::string& name) {
    const std::string dir = kFixtures + name;
    model =
        std::make_unique<gemma4::Model>(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
  }
};

SessionOptions session_options(int max_rollback) {
  SessionOptions o;
  o.block_size = 4;
  o.max_tokens = 256;
  o.max_seqs = 4;
  o.max_step_tokens = 32;
  o.max_rollback = max_rollback;
  return o;
}

float max_abs(const float* a, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i]));
  return m;
}

// Runs `chunks` of each request through the target (one Session::run per chunk index, all
// requests batched) and lets the drafter observe every row; returns the target's greedy token
// after the last chunk of each request.
std::vector<int32_t> run_target(Session& s, spec::MtpDrafter& d,
                                const std::vector<std::vector<std::vector<int32_t>>>& chunks,
                                std::vector<float>* last_hidden = nullptr) {
  const int V = s.model().config().vocab_size, H = s.model().config().hidden_size;
  std::vector<int32_t> next(chunks.size(), -1);
  for (size_t c = 0; c < chunks[0].size(); ++c) {
    std::vector<Session::Step> steps;
    for (size_t r = 0; r < chunks.size(); ++r) {
      Session::Step st;
      st.id = static_cast<Session::SeqId>(r);
      st.tokens = chunks[r][c];
      st.logit_rows = {static_cast<int>(st.tokens.size()) - 1};
      for (int i = 0; i < static_cast<int>(st.tokens.size()); ++i) st.hidden_rows.push_back(i);
      steps.push_back(std::move(st));
    }
    std::vector<int> pos0;
    for (size_t r = 0; r < chunks.size(); ++r) pos0.push_back(s.length(static_cast<int>(r)));
    gemma4::ForwardOutput out;
    s.run(steps, out, {}, /*want_final_hidden=*/true);
    size_t row = 0;
    for (size_t r = 0; r < chunks.size(); ++r) {
      const int n = static_cast<int>(steps[r].tokens.size());
      spec::HiddenRows hr;
      hr.pos0 = pos0[r];
      hr.n = n;
      hr.hidden_size = H;
      hr.final_hidden = std::span<const float>(out.final_hidden).subspan(row * H, size_t(n) * H);
      d.observe(static_cast<spec::RequestId>(r), {}, hr);
      if (last_hidden && r == 0 && c + 1 == chunks[0].size())
        last_hidden->assign(hr.final_hidden.end() - H, hr.final_hidden.end());
      row += static_cast<size_t>(n);
      const float* lg = out.logits.data() + r * static_cast<size_t>(V);
      next[r] = static_cast<int32_t>(std::max_element(lg, lg + V) - lg);
    }
  }
  return next;
}

std::vector<std::vector<int32_t>> propose(spec::MtpDrafter& d, const Session& s,
                                          const std::vector<std::vector<int32_t>>& seqs) {
  std::vector<spec::ProposeInput> in;
  for (size_t r = 0; r < seqs.size(); ++r) {
    spec::ProposeInput p;
    p.id = static_cast<spec::RequestId>(r);
    p.tokens = seqs[r];
    p.k = kK;
    for (int g = 0; g < s.kv_manager().num_groups(); ++g)
      p.target_block_tables.push_back(&s.kv_manager().block_table(static_cast<int>(r), g));
    in.push_back(std::move(p));
  }
  std::vector<std::vector<int32_t>> out;
  d.propose(in, out);
  return out;
}

class MtpGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto g = SafetensorsFile::open(kFixtures + GetParam() + "/golden.safetensors");
    for (int i = 0; i < 2; ++i) {
      const std::string p = "p" + std::to_string(i) + ".";
      Golden x;
      x.ids = read_ids(*g, p + "ids");
      x.next = read_ids(*g, p + "next").at(0);
      x.drafts = read_ids(*g, p + "drafts");
      x.logits = read_f32(*g, p + "draft_logits");
      x.hidden = read_f32(*g, p + "hidden");
      golden.push_back(std::move(x));
    }
  }
  std::unique_ptr<spec::MtpDrafter> drafter(Target& t, const Session& s) {
    spec::MtpOptions o;
    o.keep_logits = true;
    return std::make_unique<spec::MtpDrafter>(kFixtures + GetParam(), *t.model, s.kv_storage(),
                                              t.be, o);
  }
  // Compares request r's drafts and logits with golden[gi]; returns the worst relative error.
  float check(const spec::MtpDrafter& d, const std::vector<int32_t>& drafts, size_t r, int gi,
              const std::string& what) {
    const Golden& g = golden[static_cast<size_t>(gi)];
    const int V = d.config().text.vocab_size;
    EXPECT_EQ(drafts, g.drafts) << what;
    const std::vector<float>& got = d.last_logits().at(r);
    EXPECT_EQ(got.size(), g.logits.size()) << what;
    float worst = 0;
    for (int j = 0; j < kK && got.size() == g.logits.size(); ++j) {
      const float* a = got.data() + j * V;
      const float* b = g.logits.data() + j * V;
      float m = 0;
      for (int v = 0; v < V; ++v) m = std::max(m, std::fabs(a[v] - b[v]));
      const float rel = m / max_abs(b, static_cast<size_t>(V));
      EXPECT_LE(rel, 1e-3f) << what << " step " << j;
      worst = std::max(worst, rel);
    }
    return worst;
  }
  std::vector<Golden> golden;
};

TEST_P(MtpGolden, BatchedPrefillThenPropose) {
  Target t("mini-e2b");
  Session s(*t.model, t.be, session_options(spec::kMtpSlidingHistoryExtra));
  auto d = drafter(t, s);
  EXPECT_EQ(d->source_layer(0), 1);  // mini-e2b: last KV-owning sliding layer 1, full layer 2
  EXPECT_EQ(d->source_layer(2), 2);
  s.add(0);
  s.add(1);
  std::vector<float> h0;
  const std::vector<int32_t> next = run_target(s, *d, {{golden[0].ids}, {golden[1].ids}}, &h0);
  float hd = 0;
  for (size_t i = 0; i < h0.size(); ++i) hd = std::max(hd, std::fabs(h0[i] - golden[0].hidden[i]));
  EXPECT_LE(hd, 1e-4f * std::max(1.0f, max_abs(golden[0].hidden.data(), h0.size())));
  std::vector<std::vector<int32_t>> seqs;
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(next[static_cast<size_t>(i)], golden[static_cast<size_t>(i)].next);
    seqs.push_back(golden[static_cast<size_t>(i)].ids);
    seqs.back().push_back(golden[static_cast<size_t>(i)].next);
  }
  const auto out = propose(*d, s, seqs);
  ASSERT_EQ(out.size(), 2u);
  float worst = 0;
  for (int i = 0; i < 2; ++i)
    worst = std::max(worst, check(*d, out[static_cast<size_t>(i)], static_cast<size_t>(i), i,
                                  GetParam() + " p" + std::to_string(i)));
  std::printf("[ %s ] batched: max |logit diff| / max |logit| = %.3g\n", GetParam().c_str(), worst);
  EXPECT_EQ(d->stats().forward_calls, kK);

  // A sequence the drafter has no matching hidden state for (or a released one) gets no drafts.
  seqs[0].push_back(5);
  EXPECT_TRUE(propose(*d, s, {seqs[0]}).at(0).empty());
  d->release(1);
  seqs[0].pop_back();
  const auto again = propose(*d, s, seqs);
  EXPECT_EQ(again.at(0), golden[0].drafts);
  EXPECT_TRUE(again.at(1).empty());
}

TEST_P(MtpGolden, TwoTargetForwardsObserveLastRow) {
  Target t("mini-e2b");
  Session s(*t.model, t.be, session_options(spec::kMtpSlidingHistoryExtra));
  auto d = drafter(t, s);
  s.add(0);
  const std::vector<int32_t>& ids = golden[0].ids;
  const std::vector<int32_t> a(ids.begin(), ids.begin() + 9), b(ids.begin() + 9, ids.end());
  const std::vector<int32_t> next = run_target(s, *d, {{a, b}});
  EXPECT_EQ(next[0], golden[0].next);
  std::vector<int32_t> seq = ids;
  seq.push_back(golden[0].next);
  const auto out = propose(*d, s, {seq});
  const float worst = check(*d, out.at(0), 0, 0, GetParam() + " two forwards");
  std::printf("[ %s ] two forwards: max |logit diff| / max |logit| = %.3g\n", GetParam().c_str(),
              worst);
}

TEST_P(MtpGolden, ReleasedSlidingHistoryIsClamped) {
  // Without the extra history the target's KV manager frees sliding positions the HF window
  // reads: 11 + 1 tokens of prompt 0 with block size 4 and max_rollback 0 release block 1
  // (positions 4..7) at the second grow, HF's window is 7..11. The drafter narrows the window to
  // the resident 8..11 (with a warning) instead of reading a released block.
  Target t("mini-e2b");
  Session s(*t.model, t.be, session_options(0));
  auto d = drafter(t, s);
  s.add(0);
  const std::vector<int32_t> ids(golden[0].ids.begin(), golden[0].ids.begin() + 12);
  const std::vector<int32_t> a(ids.begin(), ids.begin() + 11), b(ids.begin() + 11, ids.end());
  const int32_t next = run_target(s, *d, {{a, b}}).at(0);
  EXPECT_EQ(s.kv_manager().block_table(0, 0).at(1), -1);
  std::vector<int32_t> seq = ids;
  seq.push_back(next);
  ::testing::internal::CaptureStderr();
  const auto out = propose(*d, s, {seq});
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("shorter window"), std::string::npos) << log;
  EXPECT_EQ(out.at(0).size(), static_cast<size_t>(kK));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MtpGolden, ::testing::Values("mtp-mini", "mtp-mini-centroids"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// ---- Refusals and generation_config. ----

// A copy of the mtp-mini fixture with config edits, in a fresh temporary directory.
std::string edited_copy(const std::string& tag, const std::function<void(nlohmann::json&)>& cfg,
                        const std::string& generation_config = "") {
  const fs::path dir = fs::path(::testing::TempDir()) / ("mtp-" + tag);
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(kFixtures + "mtp-mini/" + f, dir / f);
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir / "config.json"));
  cfg(j);
  std::ofstream(dir / "config.json") << j.dump(2);
  if (!generation_config.empty())
    std::ofstream(dir / "generation_config.json") << generation_config;
  return dir.string();
}

void expect_refused(const std::string& dir, const std::string& target, const std::string& needle) {
  Target t(target);
  Session s(*t.model, t.be, session_options(2));
  try {
    spec::MtpDrafter d(dir, *t.model, s.kv_storage(), t.be);
    ADD_FAILURE() << dir << " + " << target << " was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    std::printf("refused: %s\n", e.what());
  }
}

TEST(MtpRefuse, IncompatiblePairs) {
  // mini-31b's sliding layers have 2 KV heads, the assistant's 1.
  expect_refused(kFixtures + "mtp-mini", "mini-31b", "heads");
  expect_refused(edited_copy("backbone", [](auto& j) { j["backbone_hidden_size"] = 32; }),
                 "mini-e2b", "backbone_hidden_size 32");
  expect_refused(edited_copy("vocab", [](auto& j) { j["text_config"]["vocab_size"] = 512; }),
                 "mini-e2b", "vocab_size 512");
  expect_refused(edited_copy("window", [](auto& j) { j["text_config"]["sliding_window"] = 8; }),
                 "mini-e2b", "sliding_window 8");
  expect_refused(
      edited_copy("headdim",
                  [](auto& j) { j["text_config"]["per_layer_config"]["2"]["head_dim"] = 16; }),
      "mini-e2b", "heads x 16");
  expect_refused(
      edited_copy("shared", [](auto& j) { j["text_config"]["num_kv_shared_layers"] = 1; }),
      "mini-e2b", "num_kv_shared_layers");
  expect_refused(kFixtures + "mini-e2b", "mini-e2b", "gemma4_assistant");
}

TEST(MtpSuppress, SuppressedTokensAreNeverDrafted) {
  auto g = SafetensorsFile::open(kFixtures + "mtp-mini/golden.safetensors");
  const std::vector<int32_t> ids = read_ids(*g, "p0.ids"), want = read_ids(*g, "p0.drafts");
  const int32_t next = read_ids(*g, "p0.next").at(0);
  const std::vector<float> logits = read_f32(*g, "p0.draft_logits");
  const std::string dir = edited_copy(
      "suppress", [](auto&) {}, "{\"suppress_tokens\": [" + std::to_string(want[0]) + "]}");
  Target t("mini-e2b");
  Session s(*t.model, t.be, session_options(2));
  spec::MtpDrafter d(dir, *t.model, s.kv_storage(), t.be);
  s.add(0);
  run_target(s, d, {{ids}});
  std::vector<int32_t> seq = ids;
  seq.push_back(next);
  const auto out = propose(d, s, {seq});
  ASSERT_FALSE(out.at(0).empty());
  // Step 1: the runner-up of the reference logits.
  std::vector<float> row(logits.begin(), logits.begin() + 256);
  row[static_cast<size_t>(want[0])] = -INFINITY;
  EXPECT_EQ(out[0][0], std::max_element(row.begin(), row.end()) - row.begin());
  for (int32_t tok : out[0]) EXPECT_NE(tok, want[0]);
}

}  // namespace
}  // namespace fc
