// Every tensor of the Gemma 4 text model, bound by name from a checkpoint and validated against
// the config (names and shapes: ../shared/spec/gemma4-architecture.md §8). Constant rewrites
// happen here, once, at load time (layer_scalar read to a float).
#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "model/gemma4/config.h"

namespace fc::gemma4 {

struct LayerWeights {
  Weight input_layernorm, post_attention_layernorm;              // [H]
  Weight pre_feedforward_layernorm, post_feedforward_layernorm;  // [H]
  Weight q_proj;                                                 // [Hq*D, H]
  Weight q_norm;                                                 // [D]
  Weight k_proj;              // [Hkv*D, H]   (absent on KV-shared layers)
  Weight k_norm;              // [D]          (absent on KV-shared layers)
  Weight v_proj;              // [Hkv*D, H]   (absent on KV-shared layers and k_eq_v full layers)
  Weight o_proj;              // [H, Hq*D]
  Weight gate_proj, up_proj;  // [I, H]
  Weight down_proj;           // [H, I]
  float layer_scalar = 1.0f;  // multiplies the whole residual stream at the end of the layer
  // FP8 KV-cache scales (spec weight-formats §5): cache = sat_e4m3(k / k_scale). 1.0 when the
  // checkpoint has none (has_kv_scales false).
  float k_scale = 1.0f, v_scale = 1.0f;
  bool has_kv_scales = false;
  // Per-layer embeddings (P > 0).
  Weight per_layer_input_gate;       // [P, H]
  Weight per_layer_projection;       // [H, P]
  Weight post_per_layer_input_norm;  // [H]
  // MoE (enable_moe_block).
  Weight router_proj;              // [E, H]
  Weight router_scale;             // [H]
  Weight router_per_expert_scale;  // [E]
  // Per expert e: gate/up [I_moe, H], down [H, I_moe]; views into HF's fused 3-D
  // experts.gate_up_proj [E, 2I_moe, H] / down_proj [E, H, I_moe], or the per-expert 2-D modules
  // experts.e.{gate,up,down}_proj of quantized exports (spec weight-formats §2.8).
  std::vector<Weight> expert_gate, expert_up, expert_down;
  Weight pre_feedforward_layernorm_2, post_feedforward_layernorm_1, post_feedforward_layernorm_2;
};

struct Weights {
  Weight embed_tokens;                // [V, H]
  Weight lm_head;                     // [V, H] (embed_tokens when tied)
  Weight norm;                        // [H]
  Weight embed_tokens_per_layer;      // [V_ple, L*P]
  Weight per_layer_model_projection;  // [L*P, H]
  Weight per_layer_projection_norm;   // [P]
  std::vector<LayerWeights> layers;
  std::vector<std::string> unused;  // checkpoint tensors of the text model not bound
  int64_t parameter_count = 0;      // elements of the bound tensors (logical, unpacked)
  int64_t nvfp4_linears = 0;        // linear layers bound as NVFP4
  // Host copies of scale tensors rewritten at load time (non-finite values zeroed).
  std::vector<std::vector<uint8_t>> owned;
};

struct LoadOptions {
  // A NaN block scale or a non-finite / negative global scale in a quantized linear: false
  // rejects the checkpoint naming the tensor; true zeroes it (that block / the whole weight
  // contributes 0) and logs a warning.
  bool zero_bad_scales = false;
};

// Binds and validates every tensor; throws fc::Error naming the tensor (missing, wrong shape,
// unsupported dtype, bad scale). Linear layers are dense or NVFP4 as c.quant says (ModelOpt or
// compressed-tensors naming). Tensors outside the text model (vision/audio towers) are ignored.
Weights bind_weights(const Config& c, const Checkpoint& ckpt, Backend& backend,
                     const LoadOptions& options = {});

}  // namespace fc::gemma4
