// `fourcast synth` drafters (model/gemma4/synth_drafters.h) for the tiny fixture targets: the exact
// copy is byte-identical and gives bitwise-identical logits; the noisy copy loads, is
// deterministic, perturbs by the requested relative amount and changes the logits; the random
// EAGLE-3 and gemma4_assistant heads load through Eagle3Drafter / MtpDrafter against their target
// and propose drafts inside the engine without changing greedy output.
#include <gtest/gtest.h>

#include "tests/common/engine_idle.h"

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/half.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "model/gemma4/synth.h"
#include "model/gemma4/synth_drafters.h"
#include "spec/eagle3.h"
#include "spec/eagle3_config.h"
#include "spec/mtp.h"
#include "spec/session.h"

namespace fc {
namespace {

using test::idle_stats;

namespace fs = std::filesystem;
const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";

// A fresh scratch directory per test case, removed afterwards.
struct TempDir {
  std::string path;
  explicit TempDir(const std::string& name)
      : path((fs::temp_directory_path() /
              ("fc_synth_drafters_" + name + "_" + std::to_string(::getpid())))
                 .string()) {
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

const std::vector<int32_t> kPrompt = {2, 17, 99, 5, 42, 200, 7, 13, 64, 31};

// Logits of every prompt position, [n, V].
std::vector<float> prompt_logits(const std::string& dir, Backend& be) {
  gemma4::Model m(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
  Session s(m, be, SessionOptions{});
  s.add(1);
  Session::Step st;
  st.id = 1;
  st.tokens = kPrompt;
  for (int i = 0; i < static_cast<int>(kPrompt.size()); ++i) st.logit_rows.push_back(i);
  gemma4::ForwardOutput out;
  s.run({st}, out);
  return out.logits;
}

std::vector<uint8_t> bytes_of(const TensorInfo& t) {
  return std::vector<uint8_t>(t.data, t.data + t.nbytes);
}

TEST(SynthDrafters, ExactCopyIsByteAndLogitIdentical) {
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  for (const char* name : {"mini-e2b", "kitchen-sink", "nvfp4/modelopt-e2b"}) {
    const std::string src = kFixtures + name;
    TempDir out("copy");
    const gemma4::CopyReport r = gemma4::write_copy(src, out.path, {});
    const auto a = Checkpoint::open_dir(src), b = Checkpoint::open_dir(out.path);
    ASSERT_EQ(a->all().size(), b->all().size()) << name;
    EXPECT_EQ(r.tensors, static_cast<int64_t>(a->all().size()));
    EXPECT_EQ(r.perturbed + r.repacked, 0);
    for (const TensorInfo* t : a->all()) {
      const TensorInfo& u = b->get(t->name);
      EXPECT_EQ(u.dtype, t->dtype) << t->name;
      EXPECT_EQ(u.shape, t->shape) << t->name;
      EXPECT_EQ(bytes_of(u), bytes_of(*t)) << name << " " << t->name;
    }
    for (const char* f : {"config.json", "generation_config.json"})
      EXPECT_TRUE(fs::exists(out.path + "/" + f)) << name << " " << f;
    EXPECT_FALSE(fs::exists(out.path + "/golden.safetensors"));
    const std::vector<float> la = prompt_logits(src, be), lb = prompt_logits(out.path, be);
    ASSERT_EQ(la.size(), lb.size());
    EXPECT_EQ(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)), 0) << name;
  }
}

TEST(SynthDrafters, NoisyCopyPerturbsByRelativeSigma) {
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  const std::string src = kFixtures + "mini-e2b";
  TempDir out1("noisy1"), out2("noisy2");
  gemma4::CopyOptions o;
  o.noise = 0.05;
  o.seed = 7;
  const gemma4::CopyReport r = gemma4::write_copy(src, out1.path, o);
  gemma4::write_copy(src, out2.path, o);
  EXPECT_GT(r.perturbed, 0);
  const auto a = Checkpoint::open_dir(src), b = Checkpoint::open_dir(out1.path);
  const auto c = Checkpoint::open_dir(out2.path);
  for (const TensorInfo* t : a->all()) {
    const TensorInfo& u = b->get(t->name);
    EXPECT_EQ(bytes_of(u), bytes_of(c->get(t->name))) << "not deterministic: " << t->name;
    if (t->dtype != DType::kBF16 || t->numel < 4096) continue;
    // rms(noise) / rms(w) close to sigma (BF16 rounding adds a little).
    double s_w = 0, s_d = 0;
    for (uint64_t i = 0; i < t->numel; ++i) {
      uint16_t x, y;
      std::memcpy(&x, t->data + 2 * i, 2);
      std::memcpy(&y, u.data + 2 * i, 2);
      const double w = bf16_to_f32(x), d = bf16_to_f32(y) - w;
      s_w += w * w;
      s_d += d * d;
    }
    const double rel = std::sqrt(s_d / s_w);
    EXPECT_GT(rel, 0.04) << t->name;
    EXPECT_LT(rel, 0.07) << t->name;
  }
  const std::vector<float> la = prompt_logits(src, be), lb = prompt_logits(out1.path, be);
  ASSERT_EQ(la.size(), lb.size());
  double diff = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    ASSERT_TRUE(std::isfinite(lb[i]));
    diff = std::max(diff, double(std::fabs(la[i] - lb[i])));
  }
  EXPECT_GT(diff, 1e-3);
}

TEST(SynthDrafters, NoisyNvfp4CopyRecodesAFractionOfCodes) {
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  const std::string src = kFixtures + "nvfp4/modelopt-e2b";
  TempDir out("noisy_nvfp4");
  gemma4::CopyOptions o;
  o.noise = 0.2;
  const gemma4::CopyReport r = gemma4::write_copy(src, out.path, o);
  EXPECT_GT(r.repacked, 0);
  EXPECT_TRUE(fs::exists(out.path + "/hf_quant_config.json"));
  const auto a = Checkpoint::open_dir(src), b = Checkpoint::open_dir(out.path);
  uint64_t nibbles = 0, changed = 0;
  for (const TensorInfo* t : a->all()) {
    const TensorInfo& u = b->get(t->name);
    if (t->dtype == DType::kF8_E4M3 || t->name.find("_scale") != std::string::npos) {
      EXPECT_EQ(bytes_of(u), bytes_of(*t)) << "scales must be kept: " << t->name;
    }
    if (t->dtype != DType::kU8) continue;
    for (uint64_t i = 0; i < t->nbytes; ++i) {
      nibbles += 2;
      changed += ((t->data[i] ^ u.data[i]) & 0x0f) != 0;
      changed += ((t->data[i] ^ u.data[i]) & 0xf0) != 0;
    }
  }
  ASSERT_GT(nibbles, 1000u);
  // A re-randomised code differs from the old one with probability 15/16.
  const double frac = double(changed) / double(nibbles);
  EXPECT_NEAR(frac, 0.2 * 15 / 16, 0.03);
  const std::vector<float> lb = prompt_logits(out.path, be);
  for (float x : lb) ASSERT_TRUE(std::isfinite(x));
}

struct ServeRun {
  std::vector<std::vector<int32_t>> tokens;
  EngineStats stats;
};

using Factory = std::function<std::unique_ptr<spec::Drafter>(const kv::KVStorage&)>;

// Greedy requests through the engine, with the drafter `factory` makes (none if empty), k = 3.
ServeRun serve(gemma4::Model& target, Backend& be, Factory factory) {
  EngineConfig ec;
  ec.block_size = 4;
  ec.kv_tokens = 512;
  ec.scheduler.max_num_seqs = 4;
  ec.scheduler.max_num_batched_tokens = 32;
  ec.scheduler.max_model_len = 64;
  if (factory) {
    ec.spec_policy.k_max = 3;
    ec.spec_policy.adaptive = false;
    ec.make_drafter = std::move(factory);
    ec.scheduler.enable_prefix_caching = false;  // hidden-state drafters
  }
  Engine engine(target, be, ec);
  std::mt19937 rng(3);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 6; ++i) {
    EngineRequest r;
    for (int t = 0; t < 4 + i; ++t) r.prompt.push_back(3 + static_cast<int32_t>(rng() % 240));
    r.sampling.temperature = 0;
    r.max_tokens = 12;
    streams.push_back(engine.submit(r));
  }
  ServeRun run;
  for (auto& s : streams) {
    std::vector<int32_t> toks;
    for (;;) {
      auto ev = s->next(60000);
      if (!ev) {
        ADD_FAILURE() << "timeout";
        break;
      }
      toks.insert(toks.end(), ev->tokens.begin(), ev->tokens.end());
      if (ev->finished) break;
    }
    run.tokens.push_back(std::move(toks));
  }
  run.stats = idle_stats(engine);
  return run;
}

void expect_drafts(const ServeRun& ref, const ServeRun& r, const std::string& what) {
  EXPECT_EQ(r.tokens, ref.tokens) << what;  // greedy: drafts never change the output
  EXPECT_GT(r.stats.spec_drafts, 0) << what;
  EXPECT_GT(r.stats.spec_draft_tokens, r.stats.spec_drafts) << what;
  EXPECT_EQ(r.stats.kv_blocks_free, r.stats.kv_blocks_total) << what;
}

TEST(SynthDrafters, Eagle3HeadLoadsAndDrafts) {
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  for (const char* name : {"mini-31b", "mini-e2b"}) {
    const std::string dir = kFixtures + name;
    gemma4::Model target(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
    TempDir out("eagle3");
    gemma4::Eagle3SynthOptions o;
    o.draft_vocab_size = 100;
    o.preferred_ids = {250, 7, 5, 7, 9999};  // invalid and repeated ids are skipped
    o.verifier = dir;
    gemma4::write_eagle3_for(dir, out.path, o);
    const spec::Eagle3Config c = spec::load_eagle3_config(out.path);
    EXPECT_EQ(c.layer_prefix, "layers.0.");
    EXPECT_EQ(c.hidden_size, target.config().hidden_size);
    EXPECT_EQ(c.draft_vocab_size, 100);
    EXPECT_EQ(spec::check_eagle3_target(c, target.config()).size(), 3u);
    // d2t: sorted selection 5, 7, 250 plus the 97 lowest other ids.
    const auto ck = Checkpoint::open_dir(out.path);
    const TensorInfo& d2t = ck->get("d2t");
    ASSERT_EQ(d2t.dtype, DType::kI64);
    std::vector<int64_t> ids;
    for (int64_t d = 0; d < 100; ++d) {
      int64_t off;
      std::memcpy(&off, d2t.data + 8 * d, 8);
      ids.push_back(d + off);
    }
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    EXPECT_EQ(ids.back(), 250);
    EXPECT_EQ(ids[98], 98);  // 0..98 (5 and 7 came first), then 250
    EXPECT_EQ(ck->get("t2d").shape, std::vector<int64_t>{target.config().vocab_size});

    const ServeRun ref = serve(target, be, {});
    spec::Eagle3Options eo;
    eo.max_seqs = 4;
    eo.max_tokens = 1024;
    eo.block_size = 4;
    const std::string head = out.path;
    const ServeRun r = serve(target, be, [&](const kv::KVStorage&) {
      return std::unique_ptr<spec::Drafter>(new spec::Eagle3Drafter(head, target, be, eo));
    });
    expect_drafts(ref, r, std::string("eagle3 for ") + name);
  }
}

TEST(SynthDrafters, AssistantLoadsAndDrafts) {
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  for (const char* name : {"mini-e2b", "kitchen-sink", "mini-31b", "mini-26b"}) {
    const std::string dir = kFixtures + name;
    gemma4::Model target(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
    const ServeRun ref = serve(target, be, {});
    for (int centroids : {-1, 8}) {  // auto (dense for a 256-token vocabulary), 8 clusters
      TempDir out("assistant");
      gemma4::AssistantSynthOptions o;
      o.num_centroids = centroids;
      o.centroid_top_k = 2;
      gemma4::write_assistant_for(dir, out.path, o);
      const spec::MtpConfig c = spec::load_mtp_config(out.path);
      EXPECT_EQ(c.backbone_hidden_size, target.config().hidden_size);
      EXPECT_EQ(c.use_ordered_embeddings, centroids > 0);
      const std::string head = out.path;
      const ServeRun r = serve(target, be, [&](const kv::KVStorage& kv) {
        return std::unique_ptr<spec::Drafter>(new spec::MtpDrafter(head, target, kv, be));
      });
      expect_drafts(
          ref, r, std::string("assistant for ") + name + " centroids " + std::to_string(centroids));
    }
  }
}

TEST(SynthDrafters, AssistantGeometryOfRealTargets) {
  // Published figures (spec gemma4-architecture §9.1) for the named shapes.
  const auto cfg_of = [](const char* shape) {
    return gemma4::parse_config(gemma4::shape_config(shape), shape);
  };
  const nlohmann::json a31 = gemma4::assistant_config_for(cfg_of("31b"), {});
  EXPECT_EQ(a31["backbone_hidden_size"], 5376);
  EXPECT_EQ(a31["text_config"]["hidden_size"], 1024);
  EXPECT_EQ(a31["text_config"]["intermediate_size"], 8192);
  EXPECT_EQ(a31["text_config"]["num_attention_heads"], 32);
  EXPECT_EQ(a31["text_config"]["num_key_value_heads"], 16);
  EXPECT_EQ(a31["text_config"]["num_global_key_value_heads"], 4);
  EXPECT_EQ(a31["use_ordered_embeddings"], true);
  EXPECT_EQ(a31["num_centroids"], 2048);
  EXPECT_EQ(a31["centroid_intermediate_top_k"], 32);
  const nlohmann::json e4 = gemma4::assistant_config_for(cfg_of("e4b"), {});
  EXPECT_EQ(e4["text_config"]["hidden_size"], 256);
  EXPECT_EQ(e4["text_config"]["intermediate_size"], 2048);
  EXPECT_EQ(e4["text_config"]["num_attention_heads"], 4);
  EXPECT_EQ(e4["text_config"]["num_key_value_heads"], 2);
  const nlohmann::json e2 = gemma4::assistant_config_for(cfg_of("e2b"), {});
  EXPECT_EQ(e2["text_config"]["num_key_value_heads"], 1);
  EXPECT_EQ(e2["text_config"]["sliding_window"], 512);
  const nlohmann::json ea = gemma4::eagle3_config_for(cfg_of("31b"), {});
  EXPECT_EQ(ea["eagle_aux_hidden_state_layer_ids"], nlohmann::json({2, 30, 57}));
  EXPECT_EQ(ea["draft_vocab_size"], 32000);
}

}  // namespace
}  // namespace fc
