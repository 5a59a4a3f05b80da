#include "apps/cli/drafter_setup.h"

#include "core/error.h"
#include "core/log.h"
#include "spec/draft_model.h"
#include "spec/eagle3.h"
#include "spec/mtp.h"

namespace fc::cli {

void setup_speculation(const nlohmann::json& spec_json, gemma4::Model& target, Backend& backend,
                       bool bf16_embed_scale, int64_t kv_tokens, int max_seqs, int max_model_len,
                       EngineConfig& ec, DrafterSetup& keep) {
  keep.cfg = spec::parse_spec_config(spec_json);
  const spec::SpecConfig& sc = keep.cfg;
  ec.spec_policy.k_max = sc.num_speculative_tokens;
  ec.spec_policy.adaptive = sc.adaptive;
  if (sc.method == "draft_model") {
    gemma4::Config dc = gemma4::load_config(sc.model);
    if (!sc.quantization.empty()) {
      const bool ct = sc.quantization == "compressed-tensors";
      const quant::Format want = ct ? quant::Format::kCompressedTensors : quant::Format::kModelOpt;
      if (dc.quant.format != want)
        fail("--speculative-config: quantization \"", sc.quantization, "\" but the drafter ",
             sc.model,
             dc.quant.format == quant::Format::kNone ? " is not quantized"
                                                     : " uses the other NVFP4 format");
    }
    keep.draft_ckpt = Checkpoint::open_dir(sc.model);
    gemma4::ModelOptions mo;
    const TensorInfo* emb = keep.draft_ckpt->find(dc.tensor_prefix + "embed_tokens.weight");
    mo.bf16_embed_scale = emb && emb->dtype == DType::kBF16;
    keep.draft_model = std::make_unique<gemma4::Model>(dc, keep.draft_ckpt, backend, mo);
    spec::DraftModelOptions o;
    o.max_seqs = max_seqs;
    o.kv_tokens = kv_tokens;
    o.max_step_tokens = max_model_len;
    o.k_max = sc.num_speculative_tokens;
    o.kv_dtype = ec.kv_dtype == DType::kF8_E4M3 ? DType::kBF16 : ec.kv_dtype;
    if (gemma4::has_vision_tower(dc, *keep.draft_ckpt)) {  // it sees the images itself
      keep.draft_vision = std::make_unique<gemma4::VisionTower>(dc, *keep.draft_ckpt, backend);
      o.encoder = keep.draft_vision.get();
    }
    gemma4::Model* dm = keep.draft_model.get();
    if (dm->config().vocab_size != target.config().vocab_size)  // checked again by the drafter
      fail("--speculative-config: the draft model's vocab_size ", dm->config().vocab_size,
           " differs from the target's ", target.config().vocab_size,
           " (draft_model needs the same tokenizer)");
    ec.make_drafter = [dm, &target, &backend, o](const kv::KVStorage&) {
      return std::unique_ptr<spec::Drafter>(new spec::DraftModelDrafter(*dm, target, backend, o));
    };
  } else if (sc.method == "eagle3") {
    spec::Eagle3Options o;
    o.max_seqs = max_seqs;
    o.max_tokens = kv_tokens;
    o.block_size = ec.block_size;
    o.kv_dtype = ec.kv_dtype == DType::kF8_E4M3 ? DType::kBF16 : ec.kv_dtype;
    // Positions the target serves from its prefix cache give the head no hidden states: the
    // drafter keeps its own KV blocks cached, and the target recomputes the last block of a hit
    // (whose drafter KV depends on the token after it, and which gives the first hidden rows).
    o.prefix_caching = ec.scheduler.enable_prefix_caching;
    ec.scheduler.prefix_cache_drop_last_block = ec.scheduler.enable_prefix_caching;
    // Loaded now so that incompatible pairs fail at start; the engine takes it over.
    auto d = std::make_shared<std::unique_ptr<spec::Drafter>>(
        std::make_unique<spec::Eagle3Drafter>(sc.model, target, backend, o));
    ec.make_drafter = [d](const kv::KVStorage&) { return std::move(*d); };
  } else if (sc.method == "mtp") {
    spec::MtpOptions o;
    o.bf16_embed_scale = bf16_embed_scale;
    // Pairing is checked from the configs at start (load_mtp_config + the drafter's checks run
    // when the engine builds it over its KV storage).
    const std::string dir = sc.model;
    ec.make_drafter = [dir, &target, &backend, o](const kv::KVStorage& kv) {
      return std::unique_ptr<spec::Drafter>(new spec::MtpDrafter(dir, target, kv, backend, o));
    };
    // The assistant needs only the hidden state of the newest verified position, which the
    // target always computes (a prefix-cache hit never covers the last prompt token).
  } else {
    fail("--speculative-config: method \"", sc.method, "\" is not supported");
  }
  log_line(LogLevel::kInfo, "speculative decoding: " + sc.method + " from " + sc.model + ", k " +
                                std::to_string(sc.num_speculative_tokens) +
                                (sc.adaptive ? ", adaptive" : ", fixed"));
}

}  // namespace fc::cli
