// The audio tower of synthetic E2B / E4B checkpoints (fourcast synth): the released geometry
// (spec multimodal.md §5.3: hidden 1024, 12 conformer layers, 8 heads, output_proj 1536) with
// random BF16 weights, so the tower can be benchmarked and served without a model hub.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "io/safetensors.h"

namespace fc::gemma4 {

// The audio_config of Google's E2B / E4B config.json, and the wrapper's audio token ids
// (audio_token_id, boa_token_id, eoa_token_index), merged into `root`.
void add_audio_config(nlohmann::json& root);

// Appends every model.audio_tower.* and model.embed_audio.* tensor of root["audio_config"] (BF16
// uniform with standard deviation `std`, norms around 1, clip bounds ±inf as HF initialises them)
// to `ts`; returns the number of parameters. `salt` advances as synth.cpp's generator does.
int64_t add_audio_tensors(const nlohmann::json& root, int text_hidden, float std, uint64_t& salt,
                          std::vector<TensorSource>& ts);

}  // namespace fc::gemma4
