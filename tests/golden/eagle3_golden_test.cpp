// EAGLE-3 drafter against the PyTorch reference of tools/refgen/make_eagle3_fixture.py (spec
// weight-formats §6.4, §7): a random one-layer Llama head (draft vocabulary 128 of 256) on the
// mini-31b target. Checked: the target's aux rows, the drafter's mapped logits at every position of
// the first pass and at 3 chained steps (max |diff| <= 1e-3 * max |logit|), the 4 greedy drafts,
// both checkpoint layouts, config defaults, refusal of incompatible pairs, batching, and rollback
// (a drafter that saw rejected drafts equals a fresh one given the same history).
#include <gtest/gtest.h>

#include "tests/common/golden_io.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "model/gemma4/model.h"
#include "quant/nvfp4.h"
#include "spec/eagle3.h"
#include "spec/session.h"

namespace fc {
namespace {

using test::read_f32;
using test::read_ids;

namespace fs = std::filesystem;
using spec::Eagle3Drafter;
using spec::Eagle3Options;

const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";
const std::string kSpecDir = kFixtures + "eagle3-mini";
const std::string kMidDir = kFixtures + "eagle3-mini-midlayer";
constexpr int kV = 256, kH = 64, kK = 4;

// max |got - want| over finite entries of `want`; the -inf pattern must match exactly.
float logit_diff(const float* got, const float* want, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::isinf(want[i])) {
      EXPECT_TRUE(std::isinf(got[i]) && got[i] < 0) << "entry " << i << " should be -inf";
      continue;
    }
    m = std::max(m, std::fabs(got[i] - want[i]));
  }
  return m;
}
float max_finite(const float* a, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i)
    if (std::isfinite(a[i])) m = std::max(m, std::fabs(a[i]));
  return m;
}

struct Env {
  ThreadPool pool{2};
  cpu::CpuBackend be{pool};
  std::unique_ptr<gemma4::Model> target;
  std::unique_ptr<Session> session;
  std::unique_ptr<SafetensorsFile> golden;
  std::vector<int32_t> ids;  // prompt (13) + the target's first sample
  Env() {
    const std::string dir = kFixtures + "mini-31b";
    target =
        std::make_unique<gemma4::Model>(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
    SessionOptions o;
    o.block_size = 4;
    o.max_tokens = 256;
    o.max_seqs = 4;
    o.max_rollback = 8;
    o.max_step_tokens = 64;
    session = std::make_unique<Session>(*target, be, o);
    golden = SafetensorsFile::open(kSpecDir + "/golden.safetensors");
    ids = read_ids(*golden, "ids");
  }
  std::unique_ptr<Eagle3Drafter> drafter(const std::string& dir = kSpecDir, bool record = true) {
    Eagle3Options o;
    o.block_size = 4;
    o.max_tokens = 128;
    o.record_logits = record;
    return std::make_unique<Eagle3Drafter>(dir, *target, be, o);
  }
  // Runs the target on tokens[pos0, pos0 + n_run) of sequence `id` and observes the first
  // n_obs of those positions (the verified ones). Returns the captured rows [3][n_run, H].
  std::vector<std::vector<float>> run_and_observe(Eagle3Drafter& d, int64_t id,
                                                  const std::vector<int32_t>& tokens, int pos0,
                                                  int n_run, int n_obs) {
    if (pos0 == 0) session->add(id);
    Session::Step st;
    st.id = id;
    st.tokens.assign(tokens.begin() + pos0, tokens.begin() + pos0 + n_run);
    for (int i = 0; i < n_run; ++i) st.hidden_rows.push_back(i);
    gemma4::ForwardOutput out;
    session->run({st}, out, d.capture_layers());
    spec::HiddenRows hr;
    hr.pos0 = pos0;
    hr.n = n_obs;
    hr.hidden_size = kH;
    for (const auto& c : out.captured) hr.captured.emplace_back(c.data(), c.size());
    d.observe(id, tokens, hr);
    if (n_obs < n_run) session->truncate(id, pos0 + n_obs);
    return out.captured;
  }
  std::vector<int32_t> propose(Eagle3Drafter& d, int64_t id, const std::vector<int32_t>& tokens,
                               int k = kK) {
    spec::ProposeInput in;
    in.id = id;
    in.tokens = tokens;
    in.k = k;
    std::vector<std::vector<int32_t>> out;
    d.propose(std::span<const spec::ProposeInput>(&in, 1), out);
    return out.at(0);
  }
};

void expect_golden(const Eagle3Drafter& d, int64_t id, const SafetensorsFile& g,
                   const std::string& what) {
  const std::vector<float> first = read_f32(g, "first_logits");  // [13, V]
  const std::vector<float> chain = read_f32(g, "chain_logits");  // [3, V]
  const std::vector<float>& got = d.recorded_logits(id);
  ASSERT_EQ(got.size(), first.size() + chain.size()) << what;
  const float d1 = logit_diff(got.data(), first.data(), first.size());
  const float d2 = logit_diff(got.data() + first.size(), chain.data(), chain.size());
  const float m1 = max_finite(first.data(), first.size()),
              m2 = max_finite(chain.data(), chain.size());
  EXPECT_LE(d1, 1e-3f * m1) << what << ": first pass";
  EXPECT_LE(d2, 1e-3f * m2) << what << ": chained steps";
  std::printf("[%s] first pass max|diff| %.3g (max|logit| %.3g), chained %.3g (%.3g)\n",
              what.c_str(), d1, m1, d2, m2);
}

TEST(Eagle3Golden, AuxRowsFirstPassAndChainedDrafts) {
  Env env;
  auto d = env.drafter();
  EXPECT_EQ(d->method(), "eagle3");
  EXPECT_EQ(d->capture_layers(), (std::vector<int>{1, 3, 5}));
  EXPECT_EQ(d->config().speculative_tokens, kK);
  const int m = static_cast<int>(env.ids.size()) - 1;
  const auto cap = env.run_and_observe(*d, 1, env.ids, 0, m, m);
  // Target aux rows (residual entering layers 1, 3, 5) vs transformers' hidden_states.
  const std::vector<float> aux = read_f32(*env.golden, "aux");  // [3, 13, H]
  for (int c = 0; c < 3; ++c) {
    const float* want = aux.data() + static_cast<size_t>(c) * m * kH;
    const float tol = 1e-4f * std::max(1.0f, max_finite(want, static_cast<size_t>(m) * kH));
    float diff = 0;
    for (int i = 0; i < m * kH; ++i) diff = std::max(diff, std::fabs(cap[c][i] - want[i]));
    EXPECT_LE(diff, tol) << "aux block " << c;
  }
  const std::vector<int32_t> drafts = env.propose(*d, 1, env.ids);
  EXPECT_EQ(drafts, read_ids(*env.golden, "drafts"));
  expect_golden(*d, 1, *env.golden, "speculators, fourcast aux");
  EXPECT_EQ(d->kv_valid(1), m);
  EXPECT_EQ(d->stats().forward_calls, kK);

  // The drafter alone: fed the reference's aux rows.
  auto d2 = env.drafter();
  spec::HiddenRows hr;
  hr.pos0 = 0;
  hr.n = m;
  hr.hidden_size = kH;
  for (int c = 0; c < 3; ++c)
    hr.captured.emplace_back(aux.data() + static_cast<size_t>(c) * m * kH,
                             static_cast<size_t>(m) * kH);
  d2->observe(7, env.ids, hr);
  EXPECT_EQ(env.propose(*d2, 7, env.ids), read_ids(*env.golden, "drafts"));
  expect_golden(*d2, 7, *env.golden, "speculators, reference aux");
  // Proposing again with the same tokens recomputes the last row only and gives the same drafts.
  EXPECT_EQ(env.propose(*d2, 7, env.ids), read_ids(*env.golden, "drafts"));
}

TEST(Eagle3Golden, MidlayerLayoutLoadsIdentically) {
  Env env;
  auto a = env.drafter(kSpecDir);
  auto b = env.drafter(kMidDir);
  EXPECT_FALSE(a->weights().own_embedding);
  EXPECT_TRUE(b->weights().own_embedding);
  EXPECT_EQ(b->config().layer_prefix, "midlayer.");
  EXPECT_EQ(a->capture_layers(), b->capture_layers());
  EXPECT_EQ(a->config().norm_before_residual, b->config().norm_before_residual);
  EXPECT_EQ(a->config().rope.theta, b->config().rope.theta);
  EXPECT_EQ(a->weights().draft_to_target, b->weights().draft_to_target);
  const int m = static_cast<int>(env.ids.size()) - 1;
  env.run_and_observe(*a, 1, env.ids, 0, m, m);
  env.session->remove(1);
  env.run_and_observe(*b, 1, env.ids, 0, m, m);
  EXPECT_EQ(env.propose(*a, 1, env.ids), env.propose(*b, 1, env.ids));
  EXPECT_EQ(a->recorded_logits(1), b->recorded_logits(1));  // same weights: bitwise
  expect_golden(*b, 1, *env.golden, "midlayer");
}

// Batching two requests in one propose() gives what each gives alone.
TEST(Eagle3Golden, BatchedRequestsMatchSingle) {
  Env env;
  auto tgold = SafetensorsFile::open(kFixtures + "mini-31b/golden.safetensors");
  std::vector<int32_t> other = read_ids(*tgold, "p1.ids");
  other.push_back(read_ids(*tgold, "p1.greedy")[0]);
  auto d = env.drafter(kSpecDir, false);
  const int m1 = static_cast<int>(env.ids.size()) - 1, m2 = static_cast<int>(other.size()) - 1;
  env.run_and_observe(*d, 1, env.ids, 0, m1, m1);
  env.run_and_observe(*d, 2, other, 0, m2, m2);
  std::vector<spec::ProposeInput> in(2);
  in[0].id = 1, in[0].tokens = env.ids, in[0].k = kK;
  in[1].id = 2, in[1].tokens = other, in[1].k = 2;  // different k per request
  std::vector<std::vector<int32_t>> out;
  d->propose(in, out);
  EXPECT_EQ(out[0], read_ids(*env.golden, "drafts"));
  auto single = env.drafter(kSpecDir, false);
  env.session->remove(2);
  env.run_and_observe(*single, 2, other, 0, m2, m2);
  EXPECT_EQ(out[1], env.propose(*single, 2, other, 2));
  EXPECT_EQ(out[1].size(), 2u);
}

// Rejected drafts: after verifying (x_m, d1..d4) and accepting d1 only, the drafter that saw the
// old chain must draft exactly as a fresh drafter given the same verified history.
TEST(Eagle3Golden, RollbackEqualsFreshDrafter) {
  Env env;
  auto a = env.drafter();
  const int m = static_cast<int>(env.ids.size()) - 1;
  env.run_and_observe(*a, 1, env.ids, 0, m, m);
  const std::vector<int32_t> d0 = env.propose(*a, 1, env.ids);
  // Target verifies x_m, d0[0..3] at positions m..m+4; d0[0] accepted, d0[1] rejected -> r.
  std::vector<int32_t> verify = env.ids;
  verify.insert(verify.end(), d0.begin(), d0.end());
  env.run_and_observe(*a, 1, verify, m, kK + 1, 2);
  const int32_t r = d0[1] == 5 ? 6 : 5;
  std::vector<int32_t> t1 = env.ids;
  t1.push_back(d0[0]);
  t1.push_back(r);
  const std::vector<int32_t> got = env.propose(*a, 1, t1);
  EXPECT_EQ(a->kv_valid(1), m + 2);

  auto b = env.drafter();
  env.run_and_observe(*b, 2, t1, 0, m + 2, m + 2);
  const std::vector<int32_t> want = env.propose(*b, 2, t1);
  EXPECT_EQ(got, want);
  ASSERT_EQ(want.size(), static_cast<size_t>(kK));
  // Same chained logits (the catch-up rows differ in count: 2 vs m + 2).
  const auto& la = a->recorded_logits(1);
  const auto& lb = b->recorded_logits(2);
  const size_t tail = static_cast<size_t>(kK) * kV;
  const float diff = logit_diff(la.data() + la.size() - tail, lb.data() + lb.size() - tail, tail);
  EXPECT_LE(diff, 1e-4f * max_finite(lb.data(), lb.size()));
  std::printf("[rollback] drafts %d %d %d %d, max|diff| vs fresh %.3g\n", got[0], got[1], got[2],
              got[3], diff);

  // Preemption with recompute: release, re-observe everything, same drafts again.
  a->release(1);
  EXPECT_TRUE(a->recorded_logits(1).empty());
  env.session->remove(1);
  env.run_and_observe(*a, 1, t1, 0, m + 2, m + 2);
  EXPECT_EQ(env.propose(*a, 1, t1), want);
  // A request with nothing observed gets no drafts.
  EXPECT_TRUE(env.propose(*a, 99, t1).empty());
}

// Prefix caching: a request whose first positions the target served from its prefix cache
// (observed only from pos0) drafts from the head's own cached KV, with what a drafter computing
// everything gives; the cache is keyed by (token, next token) pairs, so KV computed before a
// different next token is never reused.
TEST(Eagle3Golden, PrefixCachedKvEqualsFresh) {
  Env env;
  auto make = [&](bool caching) {
    Eagle3Options o;
    o.block_size = 4;
    o.max_tokens = 128;
    o.record_logits = true;
    o.prefix_caching = caching;
    return std::make_unique<Eagle3Drafter>(kSpecDir, *env.target, env.be, o);
  };
  const int m = static_cast<int>(env.ids.size()) - 1;  // 13
  // Runs the target over all of `tokens` [0, m) as request id, observes only [pos0, m).
  auto observe_from = [&](Eagle3Drafter& d, int64_t id, const std::vector<int32_t>& tokens,
                          int pos0) {
    env.session->add(id);
    Session::Step st;
    st.id = id;
    st.tokens.assign(tokens.begin(), tokens.begin() + m);
    for (int i = 0; i < m; ++i) st.hidden_rows.push_back(i);
    gemma4::ForwardOutput out;
    env.session->run({st}, out, d.capture_layers());
    spec::HiddenRows hr;
    hr.pos0 = pos0;
    hr.n = m - pos0;
    hr.hidden_size = kH;
    for (const auto& c : out.captured)
      hr.captured.emplace_back(c.data() + static_cast<size_t>(pos0) * kH,
                               static_cast<size_t>(m - pos0) * kH);
    d.observe(id, tokens, hr);
  };
  // Compares the last `rows` recorded logit rows of two requests.
  auto tail_diff = [](const Eagle3Drafter& a, int64_t ia, const Eagle3Drafter& b, int64_t ib,
                      int rows) {
    const auto& la = a.recorded_logits(ia);
    const auto& lb = b.recorded_logits(ib);
    const size_t n = static_cast<size_t>(rows) * kV;
    EXPECT_GE(la.size(), n);
    EXPECT_GE(lb.size(), n);
    if (la.size() < n || lb.size() < n) return 1e30f;
    return logit_diff(la.data() + la.size() - n, lb.data() + lb.size() - n, n) /
           max_finite(lb.data() + lb.size() - n, n);
  };

  auto d = make(true);
  env.run_and_observe(*d, 1, env.ids, 0, m, m);
  const std::vector<int32_t> want = env.propose(*d, 1, env.ids);
  ASSERT_EQ(want.size(), static_cast<size_t>(kK));

  // The same prompt again; the engine's hit of 12 gives up its last block: observed from 8.
  observe_from(*d, 2, env.ids, 8);
  EXPECT_EQ(env.propose(*d, 2, env.ids), want);
  EXPECT_EQ(d->kv_valid(2), m);
  const float same = tail_diff(*d, 2, *d, 1, m - 8 + kK - 1);  // catch-up rows + k - 1 chained
  EXPECT_LE(same, 1e-4f);

  // Without the head's cache, positions [0, 8) have no hidden rows: no drafts.
  auto plain = make(false);
  env.run_and_observe(*plain, 3, env.ids, 0, m, m);
  (void)env.propose(*plain, 3, env.ids);
  observe_from(*plain, 4, env.ids, 8);
  EXPECT_TRUE(env.propose(*plain, 4, env.ids).empty());

  // Token 8 differs: the head's KV of positions 4..7 was computed with the old token 8 (its
  // input at position 7), so a hit of 8 is refused and one of 4 is taken.
  std::vector<int32_t> other = env.ids;
  other[8] = other[8] == 5 ? 6 : 5;
  observe_from(*d, 5, other, 8);
  EXPECT_TRUE(env.propose(*d, 5, other).empty());
  observe_from(*d, 6, other, 4);
  const std::vector<int32_t> got = env.propose(*d, 6, other);
  EXPECT_EQ(d->kv_valid(6), m);
  auto fresh = make(false);
  env.run_and_observe(*fresh, 7, other, 0, m, m);
  EXPECT_EQ(got, env.propose(*fresh, 7, other));
  const float diff = tail_diff(*d, 6, *fresh, 7, m - 4 + kK - 1);
  EXPECT_LE(diff, 1e-4f);
  std::printf("[prefix cache] same prompt rel diff %.3g, changed token rel diff %.3g\n", same,
              diff);
}

// ---- configuration: defaults and refusals (modified copies in a temp dir) ----

struct TempDrafter {
  fs::path dir;
  TempDrafter(const std::string& src, const std::function<void(nlohmann::json&)>& edit) {
    dir = fs::temp_directory_path() /
          ("fc_eagle3_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy_file(src + "/model.safetensors", dir / "model.safetensors");
    std::ifstream f(src + "/config.json");
    nlohmann::json j = nlohmann::json::parse(f);
    edit(j);
    std::ofstream(dir / "config.json") << j.dump(2);
  }
  ~TempDrafter() { fs::remove_all(dir); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

void expect_refused(Env& env, const TempDrafter& t, const std::string& needle) {
  try {
    env.drafter(t.dir.string());
    ADD_FAILURE() << "not refused; expected: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Eagle3Config, DefaultsPerLayout) {
  Env env;
  // speculators: missing norm_before_residual -> true; null aux ids -> (2, L/2, L-3).
  TempDrafter s(kSpecDir, [](nlohmann::json& j) {
    j.erase("norm_before_residual");
    j["eagle_aux_hidden_state_layer_ids"] = nullptr;
  });
  auto ds = env.drafter(s.dir.string());
  EXPECT_TRUE(ds->config().norm_before_residual);
  EXPECT_EQ(ds->capture_layers(), (std::vector<int>{2, 3, 3}));
  // Older layout: missing norm_before_residual -> false; the reference agrees on the logits.
  TempDrafter mid(kMidDir, [](nlohmann::json& j) { j.erase("norm_before_residual"); });
  auto dm = env.drafter(mid.dir.string());
  EXPECT_FALSE(dm->config().norm_before_residual);
  const int m = static_cast<int>(env.ids.size()) - 1;
  env.run_and_observe(*dm, 1, env.ids, 0, m, m);
  env.propose(*dm, 1, env.ids, 1);
  const std::vector<float> want = read_f32(*env.golden, "first_logits_nbr_false");
  const auto& got = dm->recorded_logits(1);
  ASSERT_EQ(got.size(), want.size());
  const float diff = logit_diff(got.data(), want.data(), want.size());
  EXPECT_LE(diff, 1e-3f * max_finite(want.data(), want.size()));
  std::printf("[norm_before_residual=false] first pass max|diff| %.3g\n", diff);
}

TEST(Eagle3Config, IncompatiblePairsRefused) {
  Env env;
  expect_refused(
      env,
      TempDrafter(kSpecDir,
                  [](nlohmann::json& j) { j["transformer_layer_config"]["vocab_size"] = 512; }),
      "vocabulary of 512 tokens but the target has 256");
  expect_refused(env,
                 TempDrafter(kSpecDir, [](nlohmann::json& j) { j["target_hidden_size"] = 32; }),
                 "fc takes 3 x 32 inputs but the target's hidden size is 64");
  expect_refused(env,
                 TempDrafter(kSpecDir,
                             [](nlohmann::json& j) {
                               j["eagle_aux_hidden_state_layer_ids"] = {1, 3, 6};
                             }),
                 "layer id 6 is outside the target's layers [0, 6)");
  expect_refused(env,
                 TempDrafter(kMidDir,
                             [](nlohmann::json& j) {
                               j["eagle_config"]["eagle_aux_hidden_state_layer_ids"] = {1, 3};
                             }),
                 "has 2 entries");
  expect_refused(env, TempDrafter(kSpecDir, [](nlohmann::json& j) { j["norm_before_fc"] = true; }),
                 "\"norm_before_fc\": true");
  expect_refused(env,
                 TempDrafter(kSpecDir,
                             [](nlohmann::json& j) {
                               j["transformer_layer_config"]["rope_parameters"]["rope_type"] =
                                   "yarn";
                             }),
                 "rope_type \"yarn\" is not supported");
  expect_refused(env, TempDrafter(kSpecDir, [](nlohmann::json& j) { j["draft_vocab_size"] = 100; }),
                 "lm_head.weight");
  expect_refused(env,
                 TempDrafter(kSpecDir,
                             [](nlohmann::json& j) {
                               j.erase("speculators_model_type");
                               j["architectures"] = {"LlamaForCausalLM"};
                             }),
                 "not an EAGLE-3 drafter");
}

TEST(Eagle3Config, D2tOutsideVocabularyRefused) {
  Env env;
  TempDrafter t(kSpecDir, [](nlohmann::json&) {});
  // Rewrite model.safetensors with d2t[127] pointing past the target vocabulary.
  auto src = SafetensorsFile::open(kSpecDir + "/model.safetensors");
  std::vector<int64_t> d2t(128);
  std::memcpy(d2t.data(), src->find("d2t")->data, 128 * 8);
  d2t[127] = 300;
  std::vector<TensorSource> ts;
  for (const TensorInfo& ti : src->tensors())
    ts.push_back(tensor_from_memory(ti.name, ti.dtype, ti.shape,
                                    ti.name == "d2t" ? static_cast<const void*>(d2t.data())
                                                     : static_cast<const void*>(ti.data)));
  write_safetensors((t.dir / "model.safetensors").string(), ts);
  expect_refused(env, t, "maps draft token 127 to 427, outside the target vocabulary [0, 256)");
}

// An NVFP4 EAGLE-3 drafter with lm_head and d2t left unquantized, as the published NVFP4
// speculators are (spec weight-formats §7.3), against a dense twin holding the exactly
// dequantized weights: the same logits up to summation order, the same drafts. Both ModelOpt
// forms: W4A16_NVFP4, and NVFP4 (W4A4: every linear also has an input_scale, which W4A16
// serving reads and does not apply).
class Eagle3Nvfp4 : public ::testing::TestWithParam<bool> {};

TEST_P(Eagle3Nvfp4, QuantizedDrafterMatchesItsDequantizedTwin) {
  const bool w4a4 = GetParam();
  Env env;
  TempDrafter q(kSpecDir, [](nlohmann::json&) {});
  TempDrafter d(kSpecDir, [](nlohmann::json&) {});
  auto src = SafetensorsFile::open(kSpecDir + "/model.safetensors");
  std::vector<TensorSource> qts, dts;
  std::vector<std::vector<uint8_t>> keep;
  std::vector<std::vector<float>> keep_f;
  std::vector<float> s2s;
  s2s.reserve(32);  // pointers into it are kept: no reallocation
  int quantized = 0;
  for (const TensorInfo& ti : src->tensors()) {
    const bool linear = ti.shape.size() == 2 && ti.name != "lm_head.weight" &&
                        ti.name != "embed_tokens.weight" && ti.name.size() > 7 &&
                        ti.name.compare(ti.name.size() - 7, 7, ".weight") == 0;
    if (!linear) {
      qts.push_back(tensor_from_memory(ti.name, ti.dtype, ti.shape, ti.data));
      dts.push_back(tensor_from_memory(ti.name, ti.dtype, ti.shape, ti.data));
      continue;
    }
    const int64_t N = ti.shape[0], K = ti.shape[1];
    std::vector<float> w(static_cast<size_t>(N * K));
    for (int64_t i = 0; i < N * K; ++i)
      w[static_cast<size_t>(i)] = ti.dtype == DType::kBF16
                                      ? bf16_to_f32(reinterpret_cast<const uint16_t*>(ti.data)[i])
                                      : reinterpret_cast<const float*>(ti.data)[i];
    const quant::Nvfp4Tensor t = quant::quantize(
        w.data(), N, K, K, quant::abs_max(w.data(), N, K, K), quant::Producer::kModelOpt);
    const std::string m = ti.name.substr(0, ti.name.size() - 7);
    keep.push_back(t.packed);
    qts.push_back(tensor_from_memory(m + ".weight", DType::kU8, {N, K / 2}, keep.back().data()));
    keep.push_back(t.scales);
    qts.push_back(
        tensor_from_memory(m + ".weight_scale", DType::kF8_E4M3, {N, K / 16}, keep.back().data()));
    s2s.push_back(t.global_scale);
    qts.push_back(tensor_from_memory(m + ".weight_scale_2", DType::kF32, {}, &s2s.back()));
    if (w4a4) {  // an activation amax of 6 · 448 · 0.01 (any positive scale)
      s2s.push_back(0.01f);
      qts.push_back(tensor_from_memory(m + ".input_scale", DType::kF32, {}, &s2s.back()));
    }
    // The dense twin: the exact dequantization, in F32.
    std::vector<float> deq(static_cast<size_t>(N * K));
    const quant::Nvfp4Matrix mat{t.packed.data(), t.scales.data(), N, K, K / 2,
                                 K / 16,          t.global_scale};
    for (int64_t r = 0; r < N; ++r) quant::dequantize_row(mat, r, deq.data() + r * K);
    keep_f.push_back(std::move(deq));
    dts.push_back(tensor_from_memory(ti.name, DType::kF32, {N, K}, keep_f.back().data()));
    ++quantized;
  }
  ASSERT_GE(quantized, 8);  // fc, q, k, v, o, gate, up, down
  write_safetensors((q.dir / "model.safetensors").string(), qts);
  write_safetensors((d.dir / "model.safetensors").string(), dts);
  std::ofstream(q.dir / "hf_quant_config.json")
      << R"({"producer":{"name":"modelopt","version":"test"},"quantization":{"quant_algo":")"
      << (w4a4 ? "NVFP4" : "W4A16_NVFP4")
      << R"(","group_size":16,"kv_cache_quant_algo":null,)"
         R"("exclude_modules":["lm_head","embed_tokens"]}})";
  auto dq = env.drafter(q.dir.string());
  auto dd = env.drafter(d.dir.string());
  EXPECT_EQ(dq->weights().nvfp4_linears, quantized);
  EXPECT_TRUE(dq->weights().q_proj.nvfp4());
  EXPECT_FALSE(dq->weights().lm_head.nvfp4());
  EXPECT_EQ(dd->weights().nvfp4_linears, 0);
  std::vector<int32_t> prompt(env.ids.begin(), env.ids.end() - 1);
  env.run_and_observe(*dq, 1, env.ids, 0, static_cast<int>(prompt.size()),
                      static_cast<int>(prompt.size()));
  env.run_and_observe(*dd, 2, env.ids, 0, static_cast<int>(prompt.size()),
                      static_cast<int>(prompt.size()));
  const std::vector<int32_t> a = env.propose(*dq, 1, env.ids), b = env.propose(*dd, 2, env.ids);
  EXPECT_EQ(a, b);
  const std::vector<float>& la = dq->recorded_logits(1);
  const std::vector<float>& lb = dd->recorded_logits(2);
  ASSERT_EQ(la.size(), lb.size());
  const float diff = logit_diff(la.data(), lb.data(), lb.size());
  EXPECT_LE(diff, 1e-4f * max_finite(lb.data(), lb.size()));
  if (w4a4) {
    EXPECT_GT(dq->weights().q_proj.input_scale, 0.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(ModelOpt, Eagle3Nvfp4, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Nvfp4W4A4" : "W4A16"; });

// NVFP4 tensors where the config quantizes nothing are refused by name.
TEST(Eagle3Config, StrayQuantizedTensorsRefused) {
  Env env;
  TempDrafter t(kSpecDir, [](nlohmann::json&) {});
  auto src = SafetensorsFile::open(kSpecDir + "/model.safetensors");
  std::vector<TensorSource> ts;
  for (const TensorInfo& ti : src->tensors())
    ts.push_back(tensor_from_memory(ti.name, ti.dtype, ti.shape, ti.data));
  const uint8_t scale[8] = {};
  ts.push_back(
      tensor_from_memory("layers.0.mlp.down_proj.weight_scale", DType::kF8_E4M3, {8}, scale));
  write_safetensors((t.dir / "model.safetensors").string(), ts);
  expect_refused(env, t, "module layers.0.mlp.down_proj of the EAGLE-3 drafter");
}

}  // namespace
}  // namespace fc
