// Speculative decoding with images in the prompt: greedy output identical to transformers'
// greedy tokens (and so to decoding without drafts) for each drafter kind —
//  - draft_model: the target drafting for itself with its own vision tower (it sees the image:
//    every draft is accepted) and without one (placeholders embed as pad: still exact);
//  - EAGLE-3 (eagle3-mini on mm-31b) and the MTP assistant (mtp-mini on mm-e2b), which run on the
//    target's hidden states / KV as for text.
#include <gtest/gtest.h>

#include "tests/common/golden_io.h"
#include "tests/common/mm_fixture.h"
#include "tests/common/stream_tokens.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "model/gemma4/vision.h"
#include "spec/draft_model.h"
#include "spec/eagle3.h"
#include "spec/mtp.h"

namespace fc {
namespace {

const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";

using test::fixture_image;

struct MmSetup {
  std::string dir;
  ThreadPool pool{2};
  cpu::CpuBackend be{pool};
  gemma4::Config cfg;
  std::shared_ptr<const Checkpoint> ckpt;
  std::unique_ptr<gemma4::Model> model;
  std::unique_ptr<gemma4::VisionTower> tower;
  std::unique_ptr<SafetensorsFile> g;
  std::vector<std::shared_ptr<gemma4::MediaInput>> imgs;
  explicit MmSetup(const std::string& name) : dir(kFixtures + name) {
    cfg = gemma4::load_config(dir);
    ckpt = Checkpoint::open_dir(dir);
    model = std::make_unique<gemma4::Model>(cfg, ckpt, be);
    tower = std::make_unique<gemma4::VisionTower>(cfg, *ckpt, be);
    g = SafetensorsFile::open(dir + "/golden.safetensors");
    for (int i = 0; i < 3; ++i) imgs.push_back(fixture_image(*g, i));
  }
  EngineRequest request(const std::string& p, int k) const {
    EngineRequest r;
    r.prompt = test::read_ids(*g, p + ".ids");
    r.max_tokens = 4;
    r.sampling.temperature = 0;
    r.num_speculative_tokens = k;
    const std::vector<int32_t> which = test::read_ids(*g, p + ".images");
    size_t n = 0;
    for (int t = 0; t < static_cast<int>(r.prompt.size()); ++t)
      if (r.prompt[t] == cfg.mm.image_token_id && (t == 0 || r.prompt[t - 1] != r.prompt[t])) {
        EngineMedia m;
        m.input = imgs[static_cast<size_t>(which[n])];
        m.key = 500 + static_cast<uint64_t>(which[n++]);
        m.offset = t;
        m.bidirectional = cfg.use_bidirectional_attention == "vision";
        r.media.push_back(m);
      }
    return r;
  }
};

using test::stream_tokens;

// Runs the four image prompts with drafts of k = 3 and checks the greedy tokens.
EngineStats run(MmSetup& s, std::function<std::unique_ptr<spec::Drafter>(const kv::KVStorage&)> f,
                const std::string& what) {
  EngineConfig ec;
  ec.block_size = 4;
  ec.kv_tokens = 2048;
  ec.scheduler.max_num_batched_tokens = 256;
  ec.scheduler.max_model_len = 160;
  ec.scheduler.enable_prefix_caching = false;
  ec.encoders = {s.tower.get()};
  ec.make_drafter = std::move(f);
  ec.spec_policy.k_max = 3;
  Engine engine(*s.model, s.be, ec);
  for (const char* p : {"one", "two", "between", "chat"})
    EXPECT_EQ(stream_tokens(*engine.submit(s.request(p, 3))),
              test::read_ids(*s.g, std::string(p) + ".greedy"))
        << what << " " << p;
  const EngineStats st = engine.stats();
  EXPECT_GT(st.spec_draft_tokens, 0) << what;
  std::printf("%s: %lld draft tokens, %lld accepted\n", what.c_str(),
              static_cast<long long>(st.spec_draft_tokens),
              static_cast<long long>(st.spec_accepted_tokens));
  return st;
}

TEST(MmSpec, DraftModelWithItsOwnTowerSeesTheImage) {
  MmSetup s("mm-31b");
  gemma4::Model draft(s.cfg, s.ckpt, s.be);
  gemma4::VisionTower draft_tower(s.cfg, *s.ckpt, s.be);
  for (bool with_tower : {true, false}) {
    spec::DraftModelOptions o;
    o.max_seqs = 8;
    o.kv_tokens = 2048;
    o.k_max = 3;
    o.encoder = with_tower ? &draft_tower : nullptr;
    const EngineStats st = run(
        s,
        [&, o](const kv::KVStorage&) {
          return std::unique_ptr<spec::Drafter>(
              new spec::DraftModelDrafter(draft, *s.model, s.be, o));
        },
        with_tower ? "draft_model with tower" : "draft_model without tower");
    // The same model seeing the same image drafts exactly the target's greedy tokens.
    if (with_tower) {
      EXPECT_EQ(st.spec_accepted_tokens, st.spec_draft_tokens);
    }
  }
}

TEST(MmSpec, Eagle3OnTheTargetsStatesIsExact) {
  MmSetup s("mm-31b");
  spec::Eagle3Options o;
  o.max_seqs = 8;
  o.max_tokens = 2048;
  o.block_size = 4;
  run(
      s,
      [&, o](const kv::KVStorage&) {
        return std::unique_ptr<spec::Drafter>(
            new spec::Eagle3Drafter(kFixtures + "eagle3-mini", *s.model, s.be, o));
      },
      "eagle3");
}

TEST(MmSpec, MtpOnTheTargetsKvIsExact) {
  MmSetup s("mm-e2b");
  // mtp-mini pairs with mini-e2b (window 4); mm-e2b has the same geometry with window 8, which the
  // assistant must share: a copy with that one config value changed.
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("fourcast-mtp-w8-" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (const char* f : {"model.safetensors", "generation_config.json"})
    if (fs::exists(kFixtures + "mtp-mini/" + f))
      fs::copy_file(kFixtures + "mtp-mini/" + f, dir / f, fs::copy_options::overwrite_existing);
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(kFixtures + "mtp-mini/config.json"));
  cfg["text_config"]["sliding_window"] = s.cfg.sliding_window;
  std::ofstream(dir / "config.json") << cfg.dump(2);
  run(
      s,
      [&](const kv::KVStorage& kv) {
        return std::unique_ptr<spec::Drafter>(
            new spec::MtpDrafter(dir.string(), *s.model, kv, s.be));
      },
      "mtp");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fc
