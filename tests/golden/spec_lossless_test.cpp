// Speculative decoding is lossless end to end: with random sampling, the tokens the engine emits
// through draft verification are distributed exactly as sampling from the target alone. For each
// drafter (draft_model with an exact copy of the target and with a different model, EAGLE-3, MTP)
// N seeded requests of one short prompt are served through the batched engine with a fixed k, and
// the second generated token (the first one that goes through verification: the first is sampled
// at prefill) is tested by chi-square against its exact distribution without speculation,
//   p(t2) = Σ_t1 p(t1 | prompt) · p(t2 | prompt, t1),
// computed from the target's fp32 logits with the sampler's own pipeline (process_logits). The
// same statistic on the engine's samples without speculation is the positive control; wrong
// expectations (the first token's distribution: verification on the wrong logits row; the draft
// model's own distribution; a greedy drafter accepted unconditionally) must be rejected, which
// shows the test has the power to see such bugs with this N.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../common/chi_square.h"
#include "backend/cpu/cpu_backend.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "spec/draft_model.h"
#include "spec/eagle3.h"
#include "spec/mtp.h"
#include "spec/session.h"
#include "tests/common/toy_constraint.h"

namespace fc {
namespace {

using test::chi_square;
using test::ChiSquare;

const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";

// Samples per configuration: enough for ~50-230 chi-square cells with the fixture models'
// distributions, and to reject the wrong expectations below by many orders of magnitude.
constexpr int kN = 20000;
constexpr int kMaxSeqs = 64;  // engine batch: amortizes the per-step cost over many requests
// k = 3 with max_tokens = 4: the engine caps k at the tokens left minus one, so the first
// verification carries 2 drafts (t2 and t3 drafted, up to t4 emitted) and t2 is decided by a
// multi-draft verification.
constexpr int kK = 3;
constexpr int kMaxTokens = 4;
const std::vector<int32_t> kPrompt = {2, 17, 101, 45, 230};

std::unique_ptr<gemma4::Model> load(const std::string& name, Backend& be) {
  const std::string dir = kFixtures + name;
  return std::make_unique<gemma4::Model>(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
}

SamplingParams temperature_1() {
  return SamplingParams{};
}
SamplingParams top_p_09() {
  SamplingParams p;
  p.top_p = 0.9f;
  return p;
}

// The exact distributions of the first two generated tokens when sampling from `model` alone.
struct Exact {
  std::vector<double> p1;       // p(t1 | prompt)
  std::vector<double> p2;       // p(t2) marginalised over t1
  std::vector<double> p12;      // [V * V] joint p(t1, t2) at t1 * V + t2
  std::vector<int32_t> greedy;  // greedy[t1]: argmax of the raw logits after (prompt, t1)
  // P(t2 = greedy[t1]): for a greedy exact-copy drafter, the first draft's acceptance rate.
  double p_greedy = 0.0;
};

// `after`: a token already generated (the constraint, if any, has consumed it).
std::vector<double> processed_probs(std::span<const float> row, const SamplingParams& sp,
                                    int32_t after = -1) {
  SamplerState state(sp, kPrompt, static_cast<int32_t>(row.size()));
  if (after >= 0) state.accept(after);
  SamplerScratch scratch;
  const ProcessedRow pr = process_logits(row, state, scratch);
  std::vector<double> p(row.size());
  for (size_t i = 0; i < row.size(); ++i) p[i] = pr.prob(scratch.processed()[i]);
  return p;
}

// One batched forward: the prompt (its last row gives p1) and the prompt followed by every
// possible t1 (their last rows give p(t2 | t1)), each as its own sequence.
Exact exact_distribution(gemma4::Model& model, Backend& be, const SamplingParams& sp) {
  const int V = model.config().vocab_size;
  const int P = static_cast<int>(kPrompt.size());
  SessionOptions so;
  so.block_size = 16;
  so.max_seqs = V + 1;
  so.max_tokens = static_cast<int64_t>(V + 1) * 16 * ((P + 16) / 16);
  so.max_step_tokens = (V + 1) * (P + 1);
  Session session(model, be, so);
  std::vector<Session::Step> steps;
  for (int s = 0; s <= V; ++s) {
    Session::Step st;
    st.id = s;
    st.tokens = kPrompt;
    if (s > 0) st.tokens.push_back(s - 1);
    st.logit_rows = {static_cast<int>(st.tokens.size()) - 1};
    session.add(s);
    steps.push_back(std::move(st));
  }
  gemma4::ForwardOutput out;
  session.run(steps, out);
  EXPECT_EQ(out.n_logit_rows, V + 1);
  auto row = [&](int r) {
    return std::span<const float>(out.logits.data() + static_cast<size_t>(r) * V,
                                  static_cast<size_t>(V));
  };
  Exact e;
  e.p1 = processed_probs(row(0), sp);
  e.p2.assign(static_cast<size_t>(V), 0.0);
  e.p12.assign(static_cast<size_t>(V) * V, 0.0);
  for (int t1 = 0; t1 < V; ++t1) {
    e.greedy.push_back(argmax(row(t1 + 1)));
    if (e.p1[static_cast<size_t>(t1)] == 0.0) continue;
    const std::vector<double> q = processed_probs(row(t1 + 1), sp, t1);
    e.p_greedy += e.p1[static_cast<size_t>(t1)] * q[static_cast<size_t>(e.greedy.back())];
    for (int t = 0; t < V; ++t) {
      const double pj = e.p1[static_cast<size_t>(t1)] * q[static_cast<size_t>(t)];
      e.p2[static_cast<size_t>(t)] += pj;
      e.p12[static_cast<size_t>(t1) * V + static_cast<size_t>(t)] = pj;
    }
  }
  return e;
}

// What the drafter would emit if every greedy draft were accepted: t2 = greedy(t1).
std::vector<double> always_accept(const Exact& e) {
  std::vector<double> p(e.p1.size(), 0.0);
  for (size_t t1 = 0; t1 < e.p1.size(); ++t1) p[static_cast<size_t>(e.greedy[t1])] += e.p1[t1];
  return p;
}

using Factory = std::function<std::unique_ptr<spec::Drafter>(const kv::KVStorage&)>;

struct Served {
  std::vector<int64_t> t1, t2;                   // token counts at generated positions 1 and 2
  std::vector<std::pair<int32_t, int32_t>> t12;  // (t1, t2) of every request
  int64_t verified = 0;  // requests with at least one verification carrying drafts
  int64_t drafts = 0, draft_tokens = 0, accepted = 0;  // summed over requests
  std::vector<int64_t> accepted_per_pos;
  double seconds = 0;
};

// Serves kN requests of kPrompt, request i seeded with seed0 + i; `factory` empty = no drafter.
Served serve(gemma4::Model& target, Backend& be, const Factory& factory, bool prefix_caching,
             const SamplingParams& sp, uint64_t seed0) {
  const auto t0 = std::chrono::steady_clock::now();
  EngineConfig ec;
  ec.block_size = 16;
  ec.scheduler.max_num_seqs = kMaxSeqs;
  ec.scheduler.max_num_batched_tokens = 8 * kMaxSeqs;
  ec.scheduler.max_model_len = 64;
  ec.scheduler.enable_prefix_caching = prefix_caching;
  ec.kv_tokens = static_cast<int64_t>(kMaxSeqs) * 32;
  if (factory) {
    ec.make_drafter = factory;
    ec.spec_policy.k_max = kK;
    ec.spec_policy.adaptive = false;
  }
  const int V = target.config().vocab_size;
  Served r;
  r.t1.assign(static_cast<size_t>(V), 0);
  r.t2.assign(static_cast<size_t>(V), 0);
  {
    Engine engine(target, be, ec);
    std::vector<std::shared_ptr<RequestStream>> streams;
    streams.reserve(kN);
    for (int i = 0; i < kN; ++i) {
      EngineRequest q;
      q.prompt = kPrompt;
      q.sampling = sp;
      q.sampling.seed = seed0 + static_cast<uint64_t>(i);
      q.max_tokens = kMaxTokens;
      streams.push_back(engine.submit(std::move(q)));
    }
    for (auto& s : streams) {
      std::vector<int32_t> tokens;
      for (;;) {
        auto ev = s->next(120000);
        if (!ev) {
          ADD_FAILURE() << "timeout";
          return r;
        }
        tokens.insert(tokens.end(), ev->tokens.begin(), ev->tokens.end());
        if (ev->finished) {
          EXPECT_EQ(ev->finish_reason, "length");
          r.drafts += ev->spec_drafts;
          r.draft_tokens += ev->spec_draft_tokens;
          r.accepted += ev->spec_accepted_tokens;
          if (ev->spec_drafts > 0) ++r.verified;
          break;
        }
      }
      EXPECT_EQ(tokens.size(), static_cast<size_t>(kMaxTokens));
      if (tokens.size() < 2) continue;
      ++r.t1[static_cast<size_t>(tokens[0])];
      ++r.t2[static_cast<size_t>(tokens[1])];
      r.t12.emplace_back(tokens[0], tokens[1]);
    }
    r.accepted_per_pos = engine.stats().spec_accepted_per_pos;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// Chi-square with observations in impossible cells counting as a certain misfit.
double p_value(const ChiSquare& c) {
  return c.impossible > 0 ? 0.0 : c.p_value;
}

ChiSquare report(const char* what, const std::vector<int64_t>& counts,
                 const std::vector<double>& probs) {
  const ChiSquare c = chi_square(counts, probs);
  std::printf("  %-34s chi2 %9.2f dof %3d p %.4g impossible %lld\n", what, c.stat, c.dof, c.p_value,
              static_cast<long long>(c.impossible));
  return c;
}

// The lossless check of one drafter and sampling configuration. `wrong`: further expectations
// that must be rejected.
void check_lossless(const char* name, gemma4::Model& target, Backend& be, const Factory& factory,
                    bool prefix_caching, const SamplingParams& sp, uint64_t seed0,
                    const std::vector<std::pair<std::string, std::vector<double>>>& wrong = {},
                    int min_verified_percent = 95) {
  const Exact exact = exact_distribution(target, be, sp);
  const Served s = serve(target, be, factory, prefix_caching, sp, seed0);
  std::printf(
      "%s (temperature %.1f top_p %.2f): N %d, %.1f s; requests verified %lld, drafts "
      "%lld, draft tokens %lld, accepted %lld (%.3f), accepted per position",
      name, sp.temperature, sp.top_p, kN, s.seconds, static_cast<long long>(s.verified),
      static_cast<long long>(s.drafts), static_cast<long long>(s.draft_tokens),
      static_cast<long long>(s.accepted),
      s.draft_tokens ? double(s.accepted) / double(s.draft_tokens) : 0.0);
  for (int64_t a : s.accepted_per_pos) std::printf(" %lld", static_cast<long long>(a));
  std::printf("\n");
  if (factory) {
    // Nearly every request must have had its second token decided by a verification with drafts
    // (a drafter that failed silently would make this test vacuous).
    EXPECT_GE(s.verified, kN * min_verified_percent / 100) << name;
    EXPECT_GT(s.draft_tokens, s.drafts) << name << ": verifications carry more than one draft";
  } else {
    EXPECT_EQ(s.drafts, 0);
  }
  // t1 (sampled at prefill) and the joint law are extra checks beyond the marginal of t2: at a
  // 0.001 level they add little to the chance that an unlucky but correct run fails.
  const ChiSquare c1 = report("t1 vs p(t1)", s.t1, exact.p1);
  EXPECT_EQ(c1.impossible, 0) << name;
  EXPECT_GT(c1.p_value, 0.001) << name;
  const ChiSquare c2 = report("t2 vs p(t2)", s.t2, exact.p2);
  EXPECT_EQ(c2.impossible, 0) << name << ": tokens the target cannot sample";
  EXPECT_GT(c2.p_value, 0.01) << name;
  // The joint law of (t1, t2), over the V * V cells (pooled where sparse): verification must
  // reproduce p(t2 | t1) for every t1, not just the mixture.
  std::vector<int64_t> joint(exact.p12.size(), 0);
  const size_t V = exact.p1.size();
  for (const auto& [a, b] : s.t12) ++joint[static_cast<size_t>(a) * V + static_cast<size_t>(b)];
  const ChiSquare cj = report("(t1, t2) vs p(t1, t2)", joint, exact.p12);
  EXPECT_EQ(cj.impossible, 0) << name;
  EXPECT_GT(cj.p_value, 0.001) << name;
  // How often t2 is t1's greedy continuation. For the exact-copy drafter that is exactly the first
  // draft's acceptance in the first verification (a recovered token never equals the rejected
  // draft), so this also checks that drafts are accepted as often as the rejection sampler
  // allows, not merely that the marginal is right.
  int64_t hits = 0;
  for (const auto& [a, b] : s.t12) hits += b == exact.greedy[static_cast<size_t>(a)];
  const double n = static_cast<double>(s.t12.size());
  const double z = (static_cast<double>(hits) - n * exact.p_greedy) /
                   std::sqrt(n * exact.p_greedy * (1.0 - exact.p_greedy));
  std::printf("  t2 = greedy(t1): %lld of %.0f, expected %.1f (z %.2f)\n",
              static_cast<long long>(hits), n, n * exact.p_greedy, z);
  EXPECT_LT(std::fabs(z), 4.5) << name;
  // Negative controls: the same statistic must reject a wrong expectation.
  const ChiSquare off = report("t2 vs p(t1) (wrong row)", s.t2, exact.p1);
  EXPECT_LT(p_value(off), 1e-6) << name;
  for (const auto& [what, probs] : wrong) {
    const ChiSquare w = report(("t2 vs " + what).c_str(), s.t2, probs);
    EXPECT_LT(p_value(w), 1e-6) << name << " " << what;
  }
}

class SpecLossless : public ::testing::Test {
 protected:
  // One thread: the pool's workers spin between the many tiny parallel loops of these fixture
  // models, which on a loaded 2-core machine made every run 10-20x slower than running inline.
  SpecLossless() : pool_(1), be_(pool_) {}
  ThreadPool pool_;
  cpu::CpuBackend be_;
};

Factory draft_model_factory(gemma4::Model& target, gemma4::Model& draft, Backend& be) {
  spec::DraftModelOptions o;
  o.max_seqs = kMaxSeqs;
  o.kv_tokens = static_cast<int64_t>(kMaxSeqs) * 32;
  o.max_step_tokens = 8 * kMaxSeqs;
  o.k_max = kK;
  return [&target, &draft, &be, o](const kv::KVStorage&) {
    return std::unique_ptr<spec::Drafter>(new spec::DraftModelDrafter(draft, target, be, o));
  };
}

// Without a drafter: the engine's own sampling fits the exact distributions (the reference the
// speculative runs are held to, and a check of the analytic computation itself).
TEST_F(SpecLossless, NoSpeculationControl) {
  auto e2b = load("mini-e2b", be_);
  auto m31 = load("mini-31b", be_);
  check_lossless("no spec mini-e2b", *e2b, be_, {}, true, temperature_1(), 1000000);
  check_lossless("no spec mini-31b", *m31, be_, {}, true, temperature_1(), 2000000);
  check_lossless("no spec mini-e2b", *e2b, be_, {}, true, top_p_09(), 3500000);
}

TEST_F(SpecLossless, DraftModelExactCopy) {
  auto target = load("mini-e2b", be_);
  auto copy = load("mini-e2b", be_);
  const Factory f = draft_model_factory(*target, *copy, be_);
  for (const SamplingParams& sp : {temperature_1(), top_p_09()}) {
    // The copy drafts the target's greedy token: accepting it unconditionally is a wrong law.
    const Exact exact = exact_distribution(*target, be_, sp);
    check_lossless("draft_model copy", *target, be_, f, true, sp, 4000000,
                   {{"always-accepted greedy drafts", always_accept(exact)}});
  }
}

TEST_F(SpecLossless, DraftModelOtherModel) {
  auto target = load("mini-e2b", be_);
  auto other = load("kitchen-sink", be_);
  const Factory f = draft_model_factory(*target, *other, be_);
  // Temperature 1 only (time): drafts outside the top-p nucleus are covered by EAGLE-3 and MTP,
  // whose fixture heads draft just as unrelated tokens.
  const Exact drafter = exact_distribution(*other, be_, temperature_1());
  check_lossless("draft_model kitchen-sink", *target, be_, f, true, temperature_1(), 5000000,
                 {{"the drafter's p(t2)", drafter.p2}});
}

// Under an output constraint (issue 13): the rows are masked, drafts the grammar refuses are
// cut before verification, and the law is still the target's masked law. The regex needs four
// units before it may stop, so t1 and t2 are never the stop token.
TEST_F(SpecLossless, DraftModelOtherModelUnderConstraint) {
  auto target = load("mini-e2b", be_);
  auto other = load("kitchen-sink", be_);
  auto cc = test::toy_compiler();
  SamplingParams sp = temperature_1();
  sp.make_constraint =
      test::toy_constraint(*cc, grammar::ConstraintSpec::Kind::kRegex, "([a-h][0-9]|[i-z ]+){4,}");
  const Exact unconstrained = exact_distribution(*target, be_, temperature_1());
  const Factory f = draft_model_factory(*target, *other, be_);
  check_lossless("draft_model kitchen-sink, regex", *target, be_, f, true, sp, 8000000,
                 {{"the unconstrained p(t2)", unconstrained.p2}},
                 /*min_verified_percent=*/50);  // drafts the grammar refuses are cut to none
}

TEST_F(SpecLossless, Eagle3) {
  auto target = load("mini-31b", be_);
  spec::Eagle3Options o;
  o.max_seqs = kMaxSeqs;
  o.max_tokens = static_cast<int64_t>(kMaxSeqs) * 32;
  o.block_size = 16;
  gemma4::Model& t = *target;
  Backend& be = be_;
  const Factory f = [&t, &be, o](const kv::KVStorage&) {
    return std::unique_ptr<spec::Drafter>(
        new spec::Eagle3Drafter(kFixtures + "eagle3-mini", t, be, o));
  };
  // Positions served from the prefix cache give the head no hidden states (the server turns
  // prefix caching off for eagle3 and mtp).
  for (const SamplingParams& sp : {temperature_1(), top_p_09()})
    check_lossless("eagle3", t, be_, f, false, sp, 6000000);
}

TEST_F(SpecLossless, Mtp) {
  auto target = load("mini-e2b", be_);
  gemma4::Model& t = *target;
  Backend& be = be_;
  const Factory f = [&t, &be](const kv::KVStorage& kv) {
    return std::unique_ptr<spec::Drafter>(new spec::MtpDrafter(kFixtures + "mtp-mini", t, kv, be));
  };
  for (const SamplingParams& sp : {temperature_1(), top_p_09()})
    check_lossless("mtp", t, be_, f, false, sp, 7000000);
}

}  // namespace
}  // namespace fc
