// Random-weight Gemma 4 checkpoints with the real geometry of the released models, for benchmarks
// (no model hub here). Written through the same safetensors writer and read back through the same
// loader as real checkpoints.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace fc::gemma4 {

// The config.json of a named shape ("e2b", "e4b", "26b-a4b", "31b"), nested
// Gemma4ForConditionalGeneration form as Google ships it, with its vision tower (and, for E2B/E4B,
// the audio tower: synth_audio.h). Throws for unknown names.
nlohmann::json shape_config(const std::string& shape);

struct SynthOptions {
  uint64_t seed = 1;
  float weight_std = 0.02f;  // uniform weights with this standard deviation
  uint64_t max_shard_bytes = uint64_t{4} << 30;
  // When set, embedding rows (= tied LM-head rows) of ids outside this sorted list are scaled by
  // 0.01, so a random model samples ids its tokenizer can print (benchmarks read text deltas).
  std::vector<int32_t> used_ids;
  // NVFP4 checkpoints: every linear layer (attention too unless quantize_attention is false; never
  // the embeddings, the tied LM head or the MoE router) written with random E2M1 codes and FP8
  // block scales in the producer's layout and config files (spec weight-formats §2, §3); MoE
  // experts as per-expert 2-D modules as the exporters write them.
  enum class Quant { kNone, kModelOpt, kCompressedTensors } quant = Quant::kNone;
  bool quantize_attention = true;
  bool input_scales = true;  // W4A4 checkpoint (static activation scales); false: W4A16
  int threads = 1;           // threads filling the tensors (the output does not depend on it)
};

// Writes DIR/config.json, DIR/generation_config.json and BF16 (or NVFP4, see SynthOptions)
// safetensors shards for the given config document (the text model, the vision tower when the
// config has a vision_config: synth_vision.h, and the audio tower when it has an audio_config:
// synth_audio.h). Returns the number of parameters written (logical elements).
int64_t write_synthetic(const nlohmann::json& config, const std::string& dir,
                        const SynthOptions& opt);

// The counter-based generator behind every synthetic writer (also synth_drafters.cpp): value i of
// stream `salt` is a function of (salt, i) only, so tensors can be filled in any order and chunk
// size and the result depends on the seed alone.
uint64_t synth_mix(uint64_t z);
// A BF16 tensor of uniform values in [center - half_width, center + half_width) (std =
// half_width / sqrt(3)), element i drawn from synth_mix(salt ^ synth_mix(i)).
TensorSource synth_random_bf16(const std::string& name, std::vector<int64_t> shape, uint64_t salt,
                               float center, float half_width);

}  // namespace fc::gemma4
