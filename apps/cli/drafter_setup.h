// `--speculative-config` for serve / bench: loads the drafter the JSON names and installs its
// factory and policy in an EngineConfig.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "model/gemma4/model.h"
#include "model/gemma4/vision.h"
#include "spec/spec_config.h"

namespace fc::cli {

// What must outlive the engine (the draft model of the draft_model method).
struct DrafterSetup {
  spec::SpecConfig cfg;
  std::shared_ptr<const Checkpoint> draft_ckpt;
  std::unique_ptr<gemma4::Model> draft_model;
  std::unique_ptr<gemma4::VisionTower> draft_vision;  // the draft model's own tower, if any
};

// Parses `spec_json`, loads the drafter and refuses incompatible target/drafter pairs with a
// clear fc::Error; sets ec.make_drafter and ec.spec_policy. kv_tokens / max_seqs size the
// drafter's own KV cache; bf16_embed_scale as the target's ModelOptions (the MTP assistant
// scales the target's embeddings the same way).
void setup_speculation(const nlohmann::json& spec_json, gemma4::Model& target, Backend& backend,
                       bool bf16_embed_scale, int64_t kv_tokens, int max_seqs, int max_model_len,
                       EngineConfig& ec, DrafterSetup& keep);

}  // namespace fc::cli
