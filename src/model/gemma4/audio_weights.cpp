// Binding of the audio tower's tensors (names: spec multimodal.md §5.4, HF Gemma4AudioModel).
#include <cmath>
#include <set>

#include "core/error.h"
#include "model/gemma4/audio_tower.h"
#include "model/gemma4/binder.h"

namespace fc::gemma4 {
namespace {

constexpr const char* kTower = "model.audio_tower.";
constexpr const char* kEmbed = "model.embed_audio.";

// A [rows, cols] view of a contiguous weight bound with another factorisation of its shape.
Weight as_matrix(Weight w, int64_t rows, int64_t cols) {
  FC_CHECK(w.rows * w.cols == rows * cols && w.ld == w.cols, "weight ", w.name,
           " cannot be viewed as [", rows, ", ", cols, "]");
  w.rows = rows;
  w.cols = cols;
  w.ld = cols;
  return w;
}

std::vector<float> host_vector(const Checkpoint& ckpt, const Weight& w) {
  const TensorInfo* t = ckpt.find(w.name);
  FC_CHECK(t, "tensor ", w.name, " vanished from ", ckpt.dir());
  std::vector<float> v(t->numel);
  for (size_t i = 0; i < t->numel; ++i) v[i] = binder_detail::read_float(*t, i);
  return v;
}

class AudioBinder {
 public:
  AudioBinder(const AudioConfig& c, const Checkpoint& ckpt, Binder& b)
      : c_(c), ckpt_(ckpt), b_(b) {}

  ClippedLinear clipped(const std::string& m, int64_t N, int64_t K) {
    ClippedLinear l;
    l.w = b_.linear(m + ".linear", N, K);
    if (c_.use_clipped_linears) {
      l.in_lo = b_.scalar(m + ".input_min");
      l.in_hi = b_.scalar(m + ".input_max");
      l.out_lo = b_.scalar(m + ".output_min");
      l.out_hi = b_.scalar(m + ".output_max");
      for (float v : {l.in_lo, l.in_hi, l.out_lo, l.out_hi})
        if (std::isnan(v)) fail("tensor ", kTower, m, ": a clip bound is NaN in ", ckpt_.dir());
      if (!(l.in_lo <= l.in_hi && l.out_lo <= l.out_hi))
        fail("module ", kTower, m, ": clip bounds min > max in ", ckpt_.dir());
    }
    return l;
  }

  AudioFeedForwardWeights feed_forward(const std::string& p, int64_t H) {
    AudioFeedForwardWeights f;
    f.pre_layer_norm = b_.get(p + "pre_layer_norm.weight", {H});
    f.post_layer_norm = b_.get(p + "post_layer_norm.weight", {H});
    f.ffw_layer_1 = clipped(p + "ffw_layer_1", 4 * H, H);
    f.ffw_layer_2 = clipped(p + "ffw_layer_2", H, 4 * H);
    return f;
  }

 private:
  const AudioConfig& c_;
  const Checkpoint& ckpt_;
  Binder& b_;
};

}  // namespace

AudioWeights bind_audio_weights(const AudioConfig& c, int text_hidden, const Checkpoint& ckpt,
                                Backend& be, const quant::QuantConfig& quant,
                                const LoadOptions& options) {
  AudioWeights w;
  Binder b(quant, kTower, ckpt, be, options, w.owned, w.nvfp4_linears);
  AudioBinder ab(c, ckpt, b);
  const int64_t H = c.hidden_size, C0 = c.subsampling_conv_channels[0],
                C1 = c.subsampling_conv_channels[1];
  // Frequency columns after the two stride-2 convs (k 3, p 1): 128 → 64 → 32.
  const int64_t F2 = ((c.n_mels - 1) / 2 + 1 - 1) / 2 + 1;
  w.conv0 = as_matrix(b.get("subsample_conv_projection.layer0.conv.weight", {C0, 1, 3, 3}), C0, 9);
  w.conv1 =
      as_matrix(b.get("subsample_conv_projection.layer1.conv.weight", {C1, C0, 3, 3}), C1, C0 * 9);
  w.norm0 = b.get("subsample_conv_projection.layer0.norm.weight", {C0});
  w.norm1 = b.get("subsample_conv_projection.layer1.norm.weight", {C1});
  // HF sizes this (C0 / 4) · C1, which equals the flattened F2 · C1 only for C0 = 128 mels.
  w.input_proj = b.linear("subsample_conv_projection.input_proj_linear", H, F2 * C1);
  const int64_t D = c.head_dim(), K = c.conv_kernel_size;
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    AudioLayerWeights l;
    l.feed_forward1 = ab.feed_forward(p + "feed_forward1.", H);
    l.feed_forward2 = ab.feed_forward(p + "feed_forward2.", H);
    l.norm_pre_attn = b.get(p + "norm_pre_attn.weight", {H});
    l.norm_post_attn = b.get(p + "norm_post_attn.weight", {H});
    l.norm_out = b.get(p + "norm_out.weight", {H});
    l.q_proj = ab.clipped(p + "self_attn.q_proj", H, H);
    l.k_proj = ab.clipped(p + "self_attn.k_proj", H, H);
    l.v_proj = ab.clipped(p + "self_attn.v_proj", H, H);
    l.post = ab.clipped(p + "self_attn.post", H, H);
    l.relative_k_proj = b.linear(p + "self_attn.relative_k_proj", H, H);
    l.per_dim_scale = host_vector(ckpt, b.get(p + "self_attn.per_dim_scale", {D}));
    l.lconv_pre_layer_norm = b.get(p + "lconv1d.pre_layer_norm.weight", {H});
    l.lconv_conv_norm = b.get(p + "lconv1d.conv_norm.weight", {H});
    l.linear_start = ab.clipped(p + "lconv1d.linear_start", 2 * H, H);
    l.linear_end = ab.clipped(p + "lconv1d.linear_end", H, H);
    l.depthwise_conv1d = b.get(p + "lconv1d.depthwise_conv1d.weight", {H, 1, K});
    w.layers.push_back(std::move(l));
  }
  w.output_proj = b.linear("output_proj", c.output_proj_dims, H);
  w.output_bias = host_vector(ckpt, b.get("output_proj.bias", {c.output_proj_dims}));
  w.embed_projection =
      b.linear(std::string(kEmbed) + "embedding_projection", text_hidden, c.output_proj_dims, true);
  for (const TensorInfo* t : ckpt.all())
    if ((t->name.rfind(kTower, 0) == 0 || t->name.rfind(kEmbed, 0) == 0) &&
        !b.used().count(t->name))
      w.unused.push_back(t->name);
  w.parameter_count = b.params;
  return w;
}

}  // namespace fc::gemma4
