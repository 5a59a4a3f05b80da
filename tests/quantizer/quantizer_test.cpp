// `fourcast quantize` on the bundled tiny model (models/tiny-gemma4: 4 layers, H=64, I=128,
// k_eq_v full layers): every algorithm in both formats, the written layout (names, dtypes, 0-d vs
// [1] scalars, config), loading through fourcast's own NVFP4 loader, and the quality order
// (AWQ no worse than max) measured as mean KL over held-out text from the calibration
// distribution.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "io/safetensors.h"
#include "model/gemma4/model.h"
#include "quant/quant_config.h"
#include "quantizer/awq.h"
#include "quantizer/calib.h"
#include "quantizer/eval.h"
#include "quantizer/quantizer.h"
#include "quantizer/writer.h"
#include "tokenizer/tokenizer.h"

namespace fc::quantizer {
namespace {

namespace fs = std::filesystem;
const std::string kModel = std::string(FC_SOURCE_DIR) + "/models/tiny-gemma4";

struct QuantRun {
  std::string dir;
  KlResult kl;
};

class TinyQuantize : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ =
        (fs::temp_directory_path() / ("fc_quantizer_test_" + std::to_string(getpid()))).string();
    fs::create_directories(root_);
    pool_ = new ThreadPool(2);
    const tok::Tokenizer tk = tok::Tokenizer::from_file(kModel + "/tokenizer.json");
    const auto calib = chunk_tokens(tk.encode(builtin_calib_text()), 512, 8192, 2);
    const auto eval = chunk_tokens(tk.encode(builtin_eval_text()), 512, 4096, 2);
    for (quant::Format f : {quant::Format::kModelOpt, quant::Format::kCompressedTensors})
      for (Algo a : {Algo::kMax, Algo::kAwqLite, Algo::kAwqFull}) {
        QuantizeOptions o;
        o.model_dir = kModel;
        o.format = f;
        o.algo = a;
        o.kv_fp8 = a == Algo::kAwqFull;
        o.progress = false;
        o.out_dir = root_ + "/" + name(f, a);
        quantize_model(o, calib, *pool_);
        KlOptions ko;
        ko.progress = false;
        runs_[name(f, a)] = {o.out_dir, kl_divergence(kModel, o.out_dir, eval, *pool_, ko)};
        std::printf("[ KL       ] %-24s %.4f nats/token (top-1 %.3f, %lld tokens)\n",
                    name(f, a).c_str(), runs_[name(f, a)].kl.mean_kl,
                    runs_[name(f, a)].kl.top1_agree,
                    static_cast<long long>(runs_[name(f, a)].kl.tokens));
      }
    eval_ = eval;
  }
  static void TearDownTestSuite() {
    fs::remove_all(root_);
    delete pool_;
  }
  static std::string name(quant::Format f, Algo a) {
    return std::string(f == quant::Format::kModelOpt ? "modelopt-" : "ct-") + algo_name(a);
  }
  static nlohmann::json read_json(const std::string& p) {
    std::ifstream f(p);
    return nlohmann::json::parse(f);
  }

  static inline std::string root_;
  static inline ThreadPool* pool_ = nullptr;
  static inline std::map<std::string, QuantRun> runs_;
  static inline std::vector<std::vector<int32_t>> eval_;
};

TEST_F(TinyQuantize, KlIsSmallAndAwqIsNoWorseThanMax) {
  for (const char* fmt : {"modelopt-", "ct-"}) {
    const double kmax = runs_[std::string(fmt) + "max"].kl.mean_kl;
    // Measured: max 0.316 / awq-lite 0.257 / awq-full 0.279 (ModelOpt), 0.317 / 0.269 / 0.257
    // (CT) nats per token; the bound leaves 2.5x margin. Tiny H=64 layers quantize much worse
    // than real models.
    EXPECT_TRUE(std::isfinite(kmax)) << fmt;
    EXPECT_LT(kmax, 0.8) << fmt;
    for (const char* a : {"awq-lite", "awq-full"}) {
      const double k = runs_[std::string(fmt) + a].kl.mean_kl;
      EXPECT_TRUE(std::isfinite(k)) << fmt << a;
      EXPECT_LE(k, kmax * 1.05) << fmt << a;
    }
  }
}

TEST_F(TinyQuantize, ModelOptLayout) {
  const QuantRun& r = runs_["modelopt-awq-full"];
  const auto ck = Checkpoint::open_dir(r.dir);
  const std::string q = "model.layers.0.self_attn.q_proj.";
  const TensorInfo& w = ck->get(q + "weight");
  EXPECT_EQ(w.dtype, DType::kU8);
  EXPECT_EQ(w.shape, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(ck->get(q + "weight_scale").dtype, DType::kF8_E4M3);
  EXPECT_EQ(ck->get(q + "weight_scale").shape, (std::vector<int64_t>{64, 4}));
  EXPECT_TRUE(ck->get(q + "weight_scale_2").shape.empty());
  EXPECT_TRUE(ck->get(q + "input_scale").shape.empty());
  // q/k/v share weight_scale_2 and input_scale (spec §2.4); no v_proj on k_eq_v layer 1.
  auto scalar = [&](const std::string& n) {
    return *reinterpret_cast<const float*>(ck->get(n).data);
  };
  EXPECT_EQ(scalar(q + "weight_scale_2"), scalar("model.layers.0.self_attn.k_proj.weight_scale_2"));
  EXPECT_EQ(scalar(q + "input_scale"), scalar("model.layers.0.self_attn.v_proj.input_scale"));
  EXPECT_EQ(ck->find("model.layers.1.self_attn.v_proj.weight"), nullptr);
  EXPECT_GT(scalar("model.layers.1.self_attn.k_proj.k_scale"), 0.0f);
  EXPECT_GT(scalar("model.layers.1.self_attn.v_proj.v_scale"), 0.0f);
  EXPECT_TRUE(ck->get("model.layers.1.self_attn.k_proj.k_scale").shape.empty());
  // Folded smoothing: q/k/v and gate/up have no pre_quant_scale; embeddings stay BF16.
  EXPECT_EQ(ck->find(q + "pre_quant_scale"), nullptr);
  EXPECT_EQ(ck->find("model.layers.0.mlp.down_proj.pre_quant_scale"), nullptr);
  EXPECT_EQ(ck->get("model.embed_tokens.weight").dtype, DType::kBF16);
  const nlohmann::json hf = read_json(r.dir + "/hf_quant_config.json");
  EXPECT_EQ(hf["producer"]["name"], "modelopt");
  EXPECT_EQ(hf["quantization"]["quant_algo"], "NVFP4_AWQ");
  EXPECT_EQ(hf["quantization"]["group_size"], 16);
  EXPECT_EQ(hf["quantization"]["kv_cache_quant_algo"], "FP8");
  const nlohmann::json cfg = read_json(r.dir + "/config.json");
  const quant::QuantConfig qc = quant::load_quant_config(r.dir, cfg);
  EXPECT_EQ(qc.format, quant::Format::kModelOpt);
  EXPECT_TRUE(qc.kv_fp8);
  EXPECT_TRUE(qc.scheme_for("model.layers.0.mlp.down_proj").nvfp4);
  EXPECT_FALSE(qc.scheme_for("lm_head").nvfp4);
  EXPECT_TRUE(fs::exists(r.dir + "/tokenizer.json"));
  EXPECT_TRUE(fs::exists(r.dir + "/chat_template.jinja"));
  EXPECT_EQ(read_json(runs_["modelopt-max"].dir +
                      "/hf_quant_config.json")["quantization"]["kv_cache_quant_algo"],
            nullptr);
}

TEST_F(TinyQuantize, CompressedTensorsLayout) {
  const QuantRun& r = runs_["ct-awq-full"];
  const auto ck = Checkpoint::open_dir(r.dir);
  const std::string d = "model.layers.2.mlp.down_proj.";
  EXPECT_EQ(ck->get(d + "weight_packed").dtype, DType::kU8);
  EXPECT_EQ(ck->get(d + "weight_packed").shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(ck->get(d + "weight_scale").shape, (std::vector<int64_t>{64, 8}));
  EXPECT_EQ(ck->get(d + "weight_global_scale").shape, (std::vector<int64_t>{1}));
  EXPECT_EQ(ck->get(d + "input_global_scale").shape, (std::vector<int64_t>{1}));
  EXPECT_EQ(ck->find(d + "weight"), nullptr);
  EXPECT_EQ(ck->get("model.layers.0.self_attn.k_scale").shape, (std::vector<int64_t>{1}));
  EXPECT_EQ(ck->find("model.layers.0.self_attn.o_proj.pre_quant_scale"), nullptr);
  const nlohmann::json cfg = read_json(r.dir + "/config.json");
  const nlohmann::json& qc = cfg["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "compressed-tensors");
  EXPECT_EQ(qc["format"], "nvfp4-pack-quantized");
  EXPECT_EQ(qc["quantization_status"], "compressed");
  EXPECT_EQ(qc["config_groups"]["group_0"]["targets"], nlohmann::json::array({"Linear"}));
  EXPECT_EQ(qc["config_groups"]["group_0"]["weights"]["strategy"], "tensor_group");
  EXPECT_EQ(qc["config_groups"]["group_0"]["input_activations"]["dynamic"], "local");
  EXPECT_EQ(qc["kv_cache_scheme"]["strategy"], "tensor");
  EXPECT_FALSE(fs::exists(r.dir + "/hf_quant_config.json"));
  const quant::QuantConfig parsed = quant::load_quant_config(r.dir, cfg);
  EXPECT_EQ(parsed.format, quant::Format::kCompressedTensors);
  EXPECT_FALSE(parsed.scheme_for("model.layers.0.router.proj").nvfp4);
}

// The written checkpoints load through fourcast's NVFP4 loader and give the same logits as the
// dequantized overlay the KL figures use.
TEST_F(TinyQuantize, FourcastLoaderAgreesWithOverlay) {
  for (const char* n : {"modelopt-awq-lite", "ct-max"}) {
    KlOptions ko;
    ko.progress = false;
    ko.use_loader = true;
    const KlResult r = kl_divergence(kModel, runs_[n].dir, eval_, *pool_, ko);
    EXPECT_NEAR(r.mean_kl, runs_[n].kl.mean_kl, 1e-3 * runs_[n].kl.mean_kl + 1e-5) << n;
  }
}

TEST(QuantizerMath, AwqScaleIsNormalisedAndGlobsTranslate) {
  const std::vector<float> s =
      awq_scale({1.0f, 4.0f, 0.25f, 2.0f}, {0.5f, 0.5f, 1.0f, 0.25f}, 0.5f);
  const auto [mn, mx] = std::minmax_element(s.begin(), s.end());
  EXPECT_NEAR(*mn * *mx, 1.0f, 1e-5f);
  EXPECT_EQ(glob_to_ct_ignore("lm_head"), "lm_head");
  EXPECT_EQ(glob_to_ct_ignore("*self_attn*"), "re:.*self_attn.*$");
  EXPECT_EQ(glob_to_ct_ignore("model.layers.[!0].mlp"), "re:model\\.layers\\.[^0]\\.mlp$");
}

}  // namespace
}  // namespace fc::quantizer
