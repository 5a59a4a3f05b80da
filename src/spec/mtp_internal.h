// Private parts of MtpDrafter (mtp.h), shared by mtp_load.cpp (config, weights, pairing checks)
// and mtp.cpp (the draft forward).
#pragma once

#include <vector>

#include "backend/backend.h"
#include "backend/scratch.h"
#include "model/gemma4/config.h"
#include "spec/mtp.h"

namespace fc::spec {

// One Q-only assistant decoder layer and where its K/V come from.
struct MtpDrafter::Layer {
  gemma4::LayerType type = gemma4::LayerType::kSliding;
  int head_dim = 0, num_kv_heads = 0;
  Weight input_layernorm, post_attention_layernorm;              // [H_d]
  Weight pre_feedforward_layernorm, post_feedforward_layernorm;  // [H_d]
  Weight q_proj;                                                 // [Hq*D, H_d]
  Weight q_norm;                                                 // [D]
  Weight o_proj;                                                 // [H_d, Hq*D]
  Weight gate_proj, up_proj;                                     // [I, H_d]
  Weight down_proj;                                              // [H_d, I]
  float layer_scalar = 1.0f;
  int src = -1;    // target layer whose K/V cache this layer reads
  int group = -1;  // its KV group in the target's KVStorage (= ProposeInput table index)
};

// Device buffers reused across propose() calls; buffer i grows when a batch needs more.
struct MtpDrafter::Scratch : DeviceScratch {
  using DeviceScratch::DeviceScratch;
};

}  // namespace fc::spec
