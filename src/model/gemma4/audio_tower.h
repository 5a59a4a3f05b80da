// The Gemma 4 audio tower (E2B / E4B): log-mel features → soft tokens in the text model's
// embedding space. Reads like transformers' Gemma4AudioModel.forward followed by
// Gemma4Model.get_audio_features (models/gemma4/modeling_gemma4.py; spec
// ../shared/spec/multimodal.md §5.3, §5.4):
//   subsample_conv_projection: 2 × [conv2d 3×3 / 2 → LayerNorm(channels) → ReLU], flatten,
//                              input_proj_linear
//   layers × L:  FF1 (half step) → local attention with relative positions → light conv → FF2
//                → clamp → norm_out
//   output_proj (with bias), then embed_audio: weightless RMSNorm → embedding_projection.
//
// Padded frames are not computed: encode() takes the V valid feature rows of one clip (the mask
// is always a prefix) and returns exactly the rows HF keeps after stripping with the subsampled
// mask, ceil(ceil(V / 2) / 2) of them. Nothing a valid row reads depends on padding (the convs
// see masked frames as zeros, the attention mask and the causal conv look back only), so this
// equals HF's masked batch computation (tools/refgen/make_audio_fixture.py checks that HF's own
// batched and single results agree).
//
// Thread-safety: immutable after construction except the scratch arena; one encode() at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/scratch.h"
#include "io/safetensors.h"
#include "model/gemma4/audio_config.h"
#include "model/gemma4/weights.h"
#include "quant/quant_config.h"

namespace fc::gemma4 {

// HF Gemma4ClippableLinear: clamp(input) → linear → clamp(output) (bounds ±inf without clipping).
struct ClippedLinear {
  Weight w;
  float in_lo = -INFINITY, in_hi = INFINITY, out_lo = -INFINITY, out_hi = INFINITY;
};

struct AudioFeedForwardWeights {
  Weight pre_layer_norm, post_layer_norm;  // [H]
  ClippedLinear ffw_layer_1;               // [4H, H]
  ClippedLinear ffw_layer_2;               // [H, 4H]
};

struct AudioLayerWeights {
  AudioFeedForwardWeights feed_forward1, feed_forward2;
  Weight norm_pre_attn, norm_post_attn, norm_out;  // [H]
  ClippedLinear q_proj, k_proj, v_proj, post;      // [H, H]
  Weight relative_k_proj;                          // [H, H]
  std::vector<float> per_dim_scale;                // [head_dim] (host)
  Weight lconv_pre_layer_norm, lconv_conv_norm;    // [H]
  ClippedLinear linear_start;                      // [2H, H]
  ClippedLinear linear_end;                        // [H, H]
  Weight depthwise_conv1d;                         // [H, K] (torch [H, 1, K])
};

struct AudioWeights {
  Weight conv0, conv1;  // [C0, 1·3·3], [C1, C0·3·3] (torch [Cout, Cin, 3, 3] viewed 2-D)
  Weight norm0, norm1;  // LayerNorm weights [C0], [C1]
  Weight input_proj;    // [H, F2·C1]
  std::vector<AudioLayerWeights> layers;
  Weight output_proj;               // [output_proj_dims, H]
  std::vector<float> output_bias;   // [output_proj_dims] (host)
  Weight embed_projection;          // [H_text, output_proj_dims] (model.embed_audio)
  std::vector<std::string> unused;  // audio tensors of the checkpoint not bound (expected none)
  int64_t parameter_count = 0;
  int64_t nvfp4_linears = 0;
  std::vector<std::vector<uint8_t>> owned;
};

// Binds model.audio_tower.* and model.embed_audio.* (BF16 / F16 / F32; linears NVFP4 only if
// the quantization config covers them, which published checkpoints do not). Throws fc::Error
// naming the tensor.
AudioWeights bind_audio_weights(const AudioConfig& c, int text_hidden, const Checkpoint& ckpt,
                                Backend& be, const quant::QuantConfig& quant,
                                const LoadOptions& options = {});

struct AudioEncoding {
  int64_t n = 0;              // soft tokens: subsampled_frames(subsampled_frames(V))
  std::vector<float> tower;   // [n, output_proj_dims]: Gemma4AudioModel.last_hidden_state
  std::vector<float> embeds;  // [n, H_text]: embed_audio output, what replaces <|audio|> rows
  // With keep_intermediates: the subsampling output [n, H] and each layer's output [n, H].
  std::vector<float> subsample;
  std::vector<std::vector<float>> layers;
};

class AudioTower {
 public:
  AudioTower(AudioConfig config, int text_hidden, std::shared_ptr<const Checkpoint> ckpt,
             Backend& backend, const quant::QuantConfig& quant, const LoadOptions& options = {});
  ~AudioTower();
  AudioTower(const AudioTower&) = delete;
  AudioTower& operator=(const AudioTower&) = delete;

  const AudioConfig& config() const { return cfg_; }
  const AudioWeights& weights() const { return w_; }
  int text_hidden() const { return text_hidden_; }

  // One clip's valid feature rows (host [valid, n_mels], row stride n_mels). valid >= 1.
  AudioEncoding encode(const float* features, int64_t valid, bool keep_intermediates = false);

  // Multiply-adds of encode() for `valid` frames (×2 = FLOPs), for benchmarks.
  int64_t macs(int64_t valid) const;

 private:
  void subsample(const float* feats, int64_t V, float* h);
  void layer(int i, float* h, int64_t N);
  void clipped_linear(const ClippedLinear& l, float* x, int64_t T, int64_t ldx, float* y,
                      int64_t ldy);

  AudioConfig cfg_;
  int text_hidden_;
  std::shared_ptr<const Checkpoint> ckpt_;
  Backend& be_;
  AudioWeights w_;
  float clip_;                        // min(gradient_clipping, FLT_MAX)
  std::vector<float*> rel_k_;         // per layer: [window, H] relative-position keys (device)
  std::vector<float*> q_scale_;       // per layer: [head_dim] query scale (device)
  float* output_bias_dev_ = nullptr;  // [output_proj_dims]
  DeviceScratch scratch_;
};

// The sinusoidal relative-position table of HF Gemma4AudioRelPositionalEncoding at the
// positions the attention window uses: row d (distance d = 0 .. window − 1) = [sin(p·τ), cos(p·τ)]
// with p = P − 1 − (window − d), P = (chunk + window) / 2 + 1, τ_i = e^(−i·ln(10⁴)/(H/2 − 1)), fp32
// as torch computes it. [window, H].
std::vector<float> audio_relative_positions(const AudioConfig& c);

}  // namespace fc::gemma4
