// The vision part of synthetic checkpoints (synth.h): vision_config per shape and the tower's
// random tensors.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/gemma4/config.h"

namespace fc::gemma4 {

// vision_config of a named shape: E2B/E4B 768 wide, 16 layers, clipped linears; 26B/31B 1152
// wide, 27 layers, standardize (spec multimodal.md §1.1).
nlohmann::json synth_vision_config(const std::string& shape);
// Gemma4Config's placeholder and delimiter ids (the released models').
void add_multimodal_ids(nlohmann::json& root);
// Appends the tower's tensors (BF16; clip bounds F32) when c has a vision_config; returns the
// number of parameters. `salt` advances as synth.cpp's own streams do.
int64_t add_synth_vision(const Config& c, float weight_std, uint64_t& salt,
                         std::vector<TensorSource>& ts);

}  // namespace fc::gemma4
