// Golden tests: the CPU forward pass against Hugging Face transformers (fp32, eager attention) on
// the tiny random checkpoints made by tools/refgen/make_fixtures.py. Every fixture is checked in
// four ways that must agree with the reference: one-shot prefill, token-by-token decode, chunked
// prefill (chunks of 3), and a batch mixing all of these across sequences.
//
// Tolerances (fp32 everywhere; the only differences are summation order and libm ulps):
//  - logits: max |diff| <= 1e-3 * max |logit| (the criterion);
//  - hidden states: per layer, max |diff| <= 1e-4 * max(1, max |h|). fp32 rounding of one op is
//    ~6e-8 relative; the residual stream passes through ~10 ops per layer and HF sums in another
//    order. Measured on these fixtures: at most 1.5e-6 of max |h| (kitchen-sink, layer 3), and
//    logits within 1.5e-6 of max |logit|. 1e-4 leaves a ~60x margin while still catching real
//    formula errors: rounding the sqrt(H) embedding scale to bf16 alone (a 0.25% change) fails
//    it from layer 1 on.
//  - greedy tokens: all 16 identical.
#include <gtest/gtest.h>

#include "tests/common/golden_io.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "model/gemma4/model.h"
#include "spec/session.h"

namespace fc {
namespace {

using test::read_f32;
using test::read_ids;

const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";

struct Prompt {
  std::vector<int32_t> ids;
  std::vector<float> hidden;  // [L+1, T, H]
  std::vector<float> logits;  // [T, V]
  std::vector<int32_t> greedy;
  std::vector<float> greedy_logits;  // [16, V]
};

struct Fixture {
  std::string name;
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<cpu::CpuBackend> be;
  std::unique_ptr<gemma4::Model> model;
  std::vector<Prompt> prompts;
  int64_t H = 0, V = 0, L = 0;

  explicit Fixture(const std::string& n) : name(n) {
    const std::string dir = kFixtures + n;
    pool = std::make_unique<ThreadPool>(2);
    be = std::make_unique<cpu::CpuBackend>(*pool);
    std::shared_ptr<const Checkpoint> ckpt = Checkpoint::open_dir(dir);
    model = std::make_unique<gemma4::Model>(gemma4::load_config(dir), ckpt, *be);
    H = model->config().hidden_size;
    V = model->config().vocab_size;
    L = model->config().num_hidden_layers;
    auto golden = SafetensorsFile::open(dir + "/golden.safetensors");
    for (int i = 0; i < 2; ++i) {
      const std::string p = "p" + std::to_string(i) + ".";
      Prompt pr;
      pr.ids = read_ids(*golden, p + "ids");
      pr.hidden = read_f32(*golden, p + "hidden");
      pr.logits = read_f32(*golden, p + "logits");
      pr.greedy = read_ids(*golden, p + "greedy");
      pr.greedy_logits = read_f32(*golden, p + "greedy_logits");
      prompts.push_back(std::move(pr));
    }
  }
  SessionOptions session_options() const {
    SessionOptions o;
    o.block_size = 4;  // small blocks: sequences span many blocks, sliding blocks get released
    o.max_tokens = 256;
    o.max_seqs = 4;
    o.max_step_tokens = 32;
    return o;
  }
};

float max_abs(const float* a, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i]));
  return m;
}
float max_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

void expect_logits(const float* got, const float* want, int64_t V, const std::string& what) {
  const float tol = 1e-3f * max_abs(want, static_cast<size_t>(V));
  EXPECT_LE(max_diff(got, want, static_cast<size_t>(V)), tol) << what;
}

int32_t argmax(const float* x, int64_t n) {
  return static_cast<int32_t>(std::max_element(x, x + n) - x);
}

class Golden : public ::testing::TestWithParam<std::string> {};

// One-shot prefill: hidden states of every layer, logits at every position, then 16 greedy
// decode steps.
TEST_P(Golden, PrefillHiddenLogitsAndGreedy) {
  Fixture fx(GetParam());
  for (size_t pi = 0; pi < fx.prompts.size(); ++pi) {
    const Prompt& pr = fx.prompts[pi];
    const int T = static_cast<int>(pr.ids.size());
    Session s(*fx.model, *fx.be, fx.session_options());
    s.add(1);
    Session::Step st;
    st.id = 1;
    st.tokens = pr.ids;
    for (int t = 0; t < T; ++t) st.logit_rows.push_back(t), st.hidden_rows.push_back(t);
    std::vector<int> layers;
    for (int l = 0; l <= fx.L; ++l) layers.push_back(l);
    gemma4::ForwardOutput out;
    s.run({st}, out, layers, true);
    for (int l = 0; l <= fx.L; ++l) {
      const float* want = pr.hidden.data() + static_cast<size_t>(l) * T * fx.H;
      const float* got = out.captured[static_cast<size_t>(l)].data();
      const size_t n = static_cast<size_t>(T * fx.H);
      const float tol = 1e-4f * std::max(1.0f, max_abs(want, n));
      EXPECT_LE(max_diff(got, want, n), tol) << fx.name << " prompt " << pi << " layer " << l;
    }
    EXPECT_EQ(out.final_hidden, out.captured.back());
    for (int t = 0; t < T; ++t)
      expect_logits(out.logits.data() + t * fx.V, pr.logits.data() + t * fx.V, fx.V,
                    fx.name + " prompt " + std::to_string(pi) + " pos " + std::to_string(t));
    int32_t next = argmax(out.logits.data() + (T - 1) * fx.V, fx.V);
    for (size_t g = 0; g < pr.greedy.size(); ++g) {
      ASSERT_EQ(next, pr.greedy[g]) << fx.name << " prompt " << pi << " greedy step " << g;
      if (g + 1 == pr.greedy.size()) break;
      Session::Step d;
      d.id = 1;
      d.tokens = {next};
      d.logit_rows = {0};
      s.run({d}, out);
      expect_logits(out.logits.data(), pr.greedy_logits.data() + (g + 1) * fx.V, fx.V,
                    fx.name + " decode step " + std::to_string(g + 1));
      next = argmax(out.logits.data(), fx.V);
    }
  }
}

// Feeds the prompt in chunks of `chunk` tokens (1 = token-by-token decode), then decodes greedily.
void run_chunked(Fixture& fx, int chunk) {
  for (size_t pi = 0; pi < fx.prompts.size(); ++pi) {
    const Prompt& pr = fx.prompts[pi];
    const int T = static_cast<int>(pr.ids.size());
    Session s(*fx.model, *fx.be, fx.session_options());
    s.add(7);
    gemma4::ForwardOutput out;
    for (int b = 0; b < T; b += chunk) {
      Session::Step st;
      st.id = 7;
      st.tokens.assign(pr.ids.begin() + b, pr.ids.begin() + std::min(T, b + chunk));
      for (int r = 0; r < static_cast<int>(st.tokens.size()); ++r) st.logit_rows.push_back(r);
      s.run({st}, out);
      for (int r = 0; r < static_cast<int>(st.tokens.size()); ++r)
        expect_logits(
            out.logits.data() + r * fx.V, pr.logits.data() + (b + r) * fx.V, fx.V,
            fx.name + " chunk " + std::to_string(chunk) + " pos " + std::to_string(b + r));
    }
    EXPECT_EQ(s.length(7), T);
    int32_t next = argmax(out.logits.data() + (out.n_logit_rows - 1) * fx.V, fx.V);
    for (size_t g = 0; g < pr.greedy.size(); ++g) {
      ASSERT_EQ(next, pr.greedy[g]) << fx.name << " chunk " << chunk << " greedy step " << g;
      Session::Step d{7, {next}, {0}, {}};
      s.run({d}, out);
      next = argmax(out.logits.data(), fx.V);
    }
  }
}

TEST_P(Golden, TokenByTokenDecode) {
  Fixture fx(GetParam());
  run_chunked(fx, 1);
}

TEST_P(Golden, ChunkedPrefillOf3) {
  Fixture fx(GetParam());
  run_chunked(fx, 3);
}

// Three sequences in one batch, each in a different mode per step: prompt 0 in one shot, prompt 1
// in chunks of 3, prompt 0 again token by token; after its prompt each one decodes greedily while
// the others are still prefilling. All must reproduce the reference tokens and logits.
TEST_P(Golden, MixedBatch) {
  Fixture fx(GetParam());
  struct Live {
    int id;
    const Prompt* pr;
    int chunk;
    int fed = 0;
    std::vector<int32_t> generated;
    int32_t pending = -1;
  };
  std::vector<Live> live = {{1, &fx.prompts[0], 1000, 0, {}, -1},
                            {2, &fx.prompts[1], 3, 0, {}, -1},
                            {3, &fx.prompts[0], 1, 0, {}, -1}};
  Session s(*fx.model, *fx.be, fx.session_options());
  for (Live& l : live) s.add(l.id);
  gemma4::ForwardOutput out;
  for (int step = 0; step < 64; ++step) {
    std::vector<Session::Step> steps;
    std::vector<Live*> order;
    for (Live& l : live) {
      if (l.generated.size() == l.pr->greedy.size()) continue;
      Session::Step st;
      st.id = l.id;
      const int T = static_cast<int>(l.pr->ids.size());
      if (l.fed < T) {
        const int n = std::min(l.chunk, T - l.fed);
        st.tokens.assign(l.pr->ids.begin() + l.fed, l.pr->ids.begin() + l.fed + n);
        l.fed += n;
      } else {
        st.tokens = {l.pending};
      }
      st.logit_rows = {static_cast<int>(st.tokens.size()) - 1};
      steps.push_back(std::move(st));
      order.push_back(&l);
    }
    if (steps.empty()) break;
    s.run(steps, out);
    for (size_t i = 0; i < order.size(); ++i) {
      Live& l = *order[i];
      if (l.fed < static_cast<int>(l.pr->ids.size())) continue;  // still prefilling
      const float* row = out.logits.data() + i * fx.V;
      const size_t g = l.generated.size();
      const float* want = g == 0 ? l.pr->logits.data() + (l.pr->ids.size() - 1) * fx.V
                                 : l.pr->greedy_logits.data() + g * fx.V;
      expect_logits(row, want, fx.V, fx.name + " mixed seq " + std::to_string(l.id));
      l.pending = argmax(row, fx.V);
      l.generated.push_back(l.pending);
    }
  }
  for (const Live& l : live) EXPECT_EQ(l.generated, l.pr->greedy) << fx.name << " seq " << l.id;
}

// Speculative-style rollback: append wrong tokens, truncate, continue: same tokens as without.
TEST_P(Golden, TruncateRestoresState) {
  Fixture fx(GetParam());
  const Prompt& pr = fx.prompts[0];
  SessionOptions o = fx.session_options();
  o.max_rollback = 4;
  Session s(*fx.model, *fx.be, o);
  s.add(1);
  gemma4::ForwardOutput out;
  s.run({{1, pr.ids, {static_cast<int>(pr.ids.size()) - 1}, {}}}, out);
  int32_t next = argmax(out.logits.data(), fx.V);
  for (size_t g = 0; g < pr.greedy.size(); ++g) {
    ASSERT_EQ(next, pr.greedy[g]) << fx.name << " step " << g;
    const int len = s.length(1);
    // Four "draft" tokens, one step at a time, all rejected.
    for (int d = 0; d < 4; ++d)
      s.run({{1, {static_cast<int32_t>((next + 7 * d + 3) % fx.V)}, {0}, {}}}, out);
    s.truncate(1, len);
    s.run({{1, {next}, {0}, {}}}, out);
    next = argmax(out.logits.data(), fx.V);
  }
}

std::string fixture_test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = info.param;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Golden,
                         ::testing::Values("kitchen-sink", "mini-31b", "mini-e2b", "mini-26b"),
                         fixture_test_name);

// Config-reading cases (tools/refgen/make_config_fixtures.py, docs/config.md): a top-level
// tie_word_embeddings false under Gemma4ForConditionalGeneration, proportional RoPE without
// partial_rotary_factor, "per_layer_config": {} and per-layer entries with KV heads only.
INSTANTIATE_TEST_SUITE_P(ConfigCases, Golden,
                         ::testing::Values("cfg-untied-head", "cfg-rope-no-partial",
                                           "cfg-plc-empty", "cfg-plc-kv-only"),
                         fixture_test_name);

}  // namespace
}  // namespace fc
