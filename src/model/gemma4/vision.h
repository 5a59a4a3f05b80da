// The Gemma 4 vision tower and its projector into the text model (HF Gemma4VisionModel +
// Gemma4MultimodalEmbedder `embed_vision`, transformers models/gemma4/modeling_gemma4.py; spec
// multimodal.md §1): patch embedding with the [-1, 1] shift and the two-axis position table,
// num_hidden_layers sandwich blocks (bidirectional attention within an image, scale 1, q/k norms
// with weight, v norm without, 2-D RoPE: x rotates the first half of each head, y the second),
// 3×3 average pooling × √d, the standardize step (26B/31B), then RMSNorm (no weight) and a linear
// to the text width. E2B/E4B clamp every linear's input and output (Gemma4ClippableLinear).
// Activations are fp32 throughout (HF's fp32 islands — pooler, standardize, softmax, norms — are
// fp32 here anyway). Images run on their real patches only: HF's padding patches are masked out
// of attention and pooling, so the result is the same.
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "model/gemma4/config.h"
#include "model/gemma4/media.h"
#include "model/gemma4/weights.h"

namespace fc::gemma4 {

// A linear with optional Gemma4ClippableLinear bounds (±inf when absent).
struct ClippedLinear {
  Weight w;
  bool clipped = false;
  float in_min = 0, in_max = 0, out_min = 0, out_max = 0;
};

struct VisionLayerWeights {
  Weight input_layernorm, post_attention_layernorm;              // [d]
  Weight pre_feedforward_layernorm, post_feedforward_layernorm;  // [d]
  ClippedLinear q_proj, k_proj, v_proj, o_proj;                  // [Hq·hd, d] ... [d, Hq·hd]
  Weight q_norm, k_norm;                                         // [hd]
  ClippedLinear gate_proj, up_proj, down_proj;                   // [I, d], [I, d], [d, I]
};

struct VisionWeights {
  Weight input_proj;      // [d, 3·p²]
  Weight position_table;  // [2·position_embedding_size, d] (the [2, S, d] table as rows)
  std::vector<VisionLayerWeights> layers;
  Weight std_bias, std_scale;   // [d] (standardize)
  Weight embedding_projection;  // [H_text, d]
  std::vector<std::vector<uint8_t>> owned;
  int64_t nvfp4_linears = 0;
  int64_t parameter_count = 0;
};

// Intermediates of one encode() call, for the golden tests (host copies, rows of all images in
// order): [P, d] after the patch embedder and after each layer, [N, d] pooled (× √d) and after
// standardize, [N, H_text] the projected soft tokens.
struct VisionTrace {
  std::vector<float> patch_embed;
  std::vector<std::vector<float>> layers;
  std::vector<float> pooled, tower, embed;
};

class VisionTower final : public MediaEncoder {
 public:
  // Binds model.vision_tower.* and model.embed_vision.* (throws fc::Error naming a missing or
  // misshapen tensor). Linears are dense or NVFP4 as the checkpoint's quantization config says.
  VisionTower(const Config& text, const Checkpoint& ckpt, Backend& backend,
              const LoadOptions& load = {});
  ~VisionTower() override;

  const VisionConfig& config() const { return vc_; }
  const VisionWeights& weights() const { return w_; }
  std::vector<std::string> modalities() const override { return {"image", "video"}; }
  int64_t embed_dim() const override { return text_hidden_; }
  void encode(const std::vector<const MediaInput*>& items, float* out) override;
  // encode() that also records the intermediates.
  void encode_traced(const std::vector<const MediaInput*>& items, float* out, VisionTrace* trace);

  // Floating-point operations of one image of grid_h × grid_w patches (multiply-add = 2), for
  // the benchmark: linears, attention scores and values.
  static double flops(const VisionConfig& v, int64_t text_hidden, int grid_h, int grid_w);

 private:
  struct Scratch;
  void linear(const float* x, int64_t T, int64_t ldx, const ClippedLinear& l, float* y, int64_t ldy,
              float* tmp);
  VisionConfig vc_;
  int64_t text_hidden_ = 0;
  Backend& be_;
  VisionWeights w_;
  std::vector<float> inv_freq_;  // [hd/4]: the RoPE of one axis (half a head)
  float* inv_freq_dev_ = nullptr;
  std::unique_ptr<Scratch> scratch_;
};

// True when the checkpoint holds a vision tower (model.vision_tower.patch_embedder.*).
bool has_vision_tower(const Config& c, const Checkpoint& ckpt);

}  // namespace fc::gemma4
