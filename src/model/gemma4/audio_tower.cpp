#include "model/gemma4/audio_tower.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/error.h"

namespace fc::gemma4 {
namespace {

// HF's Gemma4RMSNorm default: the feed-forward and attention norms of Gemma4AudioLayer are built
// without the config's eps; only the light-conv norms and the subsampling LayerNorms use it.
constexpr float kNormEps = 1e-6f;
// Output time rows of a subsampling conv processed per patches buffer (bounds the im2col buffer
// to 128 · 32 · 1152 floats = 19 MB at the real geometry).
constexpr int64_t kConvRows = 128;

int64_t conv_out(int64_t n) {  // k 3, stride 2, pad 1
  return (n + 2 - 3) / 2 + 1;
}

}  // namespace

std::vector<float> audio_relative_positions(const AudioConfig& c) {
  const int H = c.hidden_size, half = H / 2, W = c.attention_window();
  const int P = (c.attention_chunk_size + W) / 2 + 1;
  const double incr = std::log(10000.0 / 1.0) / std::max(half - 1, 1);
  std::vector<float> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i)  // torch: exp(arange(half) · −incr) in fp32
    inv[static_cast<size_t>(i)] = std::exp(static_cast<float>(i) * static_cast<float>(-incr));
  std::vector<float> out(static_cast<size_t>(W) * static_cast<size_t>(H));
  for (int d = 0; d < W; ++d) {
    const float pos = static_cast<float>(P - 1 - (W - d));
    float* row = out.data() + static_cast<size_t>(d) * static_cast<size_t>(H);
    for (int i = 0; i < half; ++i) {
      const float a = pos * inv[static_cast<size_t>(i)];
      row[i] = std::sin(a);
      row[half + i] = std::cos(a);
    }
  }
  return out;
}

AudioTower::AudioTower(AudioConfig config, int text_hidden, std::shared_ptr<const Checkpoint> ckpt,
                       Backend& backend, const quant::QuantConfig& quant,
                       const LoadOptions& options)
    : cfg_(std::move(config)),
      text_hidden_(text_hidden),
      ckpt_(std::move(ckpt)),
      be_(backend),
      scratch_(backend) {
  w_ = bind_audio_weights(cfg_, text_hidden_, *ckpt_, be_, quant, options);
  clip_ = static_cast<float>(std::min(cfg_.gradient_clipping, static_cast<double>(FLT_MAX)));
  const int64_t H = cfg_.hidden_size, W = cfg_.attention_window(), D = cfg_.head_dim();
  // Per layer: rel_k = relative_k_proj(sinusoids) [W, H], and the query scale
  // hd^-½ / ln 2 · softplus(per_dim_scale) [D] (HF multiplies q by both).
  const std::vector<float> pos = audio_relative_positions(cfg_);
  float* pos_dev = static_cast<float*>(be_.alloc(pos.size() * 4));
  be_.to_device(pos_dev, pos.data(), pos.size() * 4);
  const float q_scale = static_cast<float>(std::pow(static_cast<double>(D), -0.5) / std::log(2.0));
  for (const AudioLayerWeights& l : w_.layers) {
    float* r = static_cast<float*>(be_.alloc(static_cast<size_t>(W * H) * 4));
    be_.linear(pos_dev, W, H, l.relative_k_proj, r, H);
    rel_k_.push_back(r);
    std::vector<float> qs(static_cast<size_t>(D));
    for (int64_t d = 0; d < D; ++d) {
      const double x = l.per_dim_scale[static_cast<size_t>(d)];
      const float sp = static_cast<float>(x > 20.0 ? x : std::log1p(std::exp(x)));  // softplus
      qs[static_cast<size_t>(d)] = q_scale * sp;
    }
    float* q = static_cast<float*>(be_.alloc(static_cast<size_t>(D) * 4));
    be_.to_device(q, qs.data(), qs.size() * 4);
    q_scale_.push_back(q);
  }
  be_.free(pos_dev);
  output_bias_dev_ = static_cast<float*>(be_.alloc(w_.output_bias.size() * 4));
  be_.to_device(output_bias_dev_, w_.output_bias.data(), w_.output_bias.size() * 4);
}

AudioTower::~AudioTower() {
  for (float* p : rel_k_) be_.free(p);
  for (float* p : q_scale_) be_.free(p);
  if (output_bias_dev_) be_.free(output_bias_dev_);
}

int64_t AudioTower::macs(int64_t V) const {
  const int64_t C0 = cfg_.subsampling_conv_channels[0], C1 = cfg_.subsampling_conv_channels[1];
  const int64_t F1 = conv_out(cfg_.n_mels), F2 = conv_out(F1);
  const int64_t T1 = conv_out(V), N = conv_out(T1), H = cfg_.hidden_size;
  const int64_t W = cfg_.attention_window(), K = cfg_.conv_kernel_size;
  int64_t m = T1 * F1 * C0 * 9 + N * F2 * C1 * C0 * 9 + N * F2 * C1 * H;  // convs, input_proj
  const int64_t per_layer = 2 * (8 * H * H)  // two feed-forwards (H → 4H → H)
                            + 4 * H * H      // q, k, v, post
                            + 2 * W * H      // content and position logits
                            + W * H          // weighted values
                            + 3 * H * H      // linear_start (2H) and linear_end
                            + K * H;         // depthwise conv
  m += N * per_layer * cfg_.num_hidden_layers + cfg_.num_hidden_layers * W * H * H;  // + rel_k
  m += N * (H * cfg_.output_proj_dims + cfg_.output_proj_dims * text_hidden_);
  return m;
}

void AudioTower::clipped_linear(const ClippedLinear& l, float* x, int64_t T, int64_t ldx, float* y,
                                int64_t ldy) {
  // x is clamped in place: callers pass a buffer they no longer need.
  if (cfg_.use_clipped_linears) be_.clamp(x, ldx, T, l.w.cols, l.in_lo, l.in_hi);
  be_.linear(x, T, ldx, l.w, y, ldy);
  if (cfg_.use_clipped_linears) be_.clamp(y, ldy, T, l.w.rows, l.out_lo, l.out_hi);
}

// Gemma4AudioSubSampleConvProjection on V valid frames: h [N, H].
void AudioTower::subsample(const float* feats, int64_t V, float* h) {
  const int64_t M = cfg_.n_mels, C0 = cfg_.subsampling_conv_channels[0],
                C1 = cfg_.subsampling_conv_channels[1];
  const int64_t T1 = conv_out(V), F1 = conv_out(M), N = conv_out(T1), F2 = conv_out(F1);
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  float* x0 = scratch_.next_f32(V * M);         // [V, M, 1] channel-last
  float* y0 = scratch_.next_f32(T1 * F1 * C0);  // layer0 output [T1, F1, C0]
  float* y1 = scratch_.next_f32(N * F2 * C1);   // layer1 output [N, F2, C1]
  float* patches = scratch_.next_f32(kConvRows * std::max(F1 * 9, F2 * C0 * 9));
  be_.to_device(x0, feats, static_cast<size_t>(V * M) * 4);
  // Each layer: conv (patches · Wᵀ) → LayerNorm over channels → ReLU. Frames past the input's
  // end are the zeros HF's mask multiplication makes them.
  auto conv_layer = [&](const float* x, int64_t T, int64_t F, int64_t C, const Weight& wconv,
                        const Weight& norm, float* y, int64_t To, int64_t Fo) {
    const int64_t Co = wconv.rows;
    for (int64_t t0 = 0; t0 < To; t0 += kConvRows) {
      const int64_t nt = std::min(kConvRows, To - t0);
      be_.conv2d_patches(x, T, F, C, 3, 2, 1, t0, nt, patches);
      be_.linear(patches, nt * Fo, C * 9, wconv, y + t0 * Fo * Co, Co);
    }
    be_.layernorm(y, To * Fo, Co, Co, &norm, nullptr, eps, y, Co);
    be_.clamp(y, Co, To * Fo, Co, 0.0f, INFINITY);  // ReLU
  };
  conv_layer(x0, V, M, 1, w_.conv0, w_.norm0, y0, T1, F1);
  conv_layer(y0, T1, F1, C0, w_.conv1, w_.norm1, y1, N, F2);
  // [N, F2, C1] is already HF's permute(0, 2, 3, 1).reshape(N, F2·C1).
  be_.linear(y1, N, F2 * C1, w_.input_proj, h, cfg_.hidden_size);
}

// One Gemma4AudioLayer over h [N, H] in place.
void AudioTower::layer(int i, float* h, int64_t N) {
  const AudioLayerWeights& l = w_.layers[static_cast<size_t>(i)];
  const int64_t H = cfg_.hidden_size;
  const float eps = static_cast<float>(cfg_.rms_norm_eps), clip = clip_;
  float* x = scratch_.next_f32(N * H);  // normed block input
  float* t = scratch_.next_f32(N * H);  // clipped-linear input copy
  float* q = scratch_.next_f32(N * H);
  float* k = scratch_.next_f32(N * H);
  float* v = scratch_.next_f32(N * H);
  float* a = scratch_.next_f32(N * H);         // block output
  float* wide = scratch_.next_f32(N * 4 * H);  // FF hidden [N, 4H] / light-conv [N, 2H]
  const size_t bytes = static_cast<size_t>(N * H) * 4;

  // Gemma4AudioFeedForward: h += 0.5 · post_norm(clamp(W2 silu(W1 pre_norm(clamp(h))))).
  auto feed_forward = [&](const AudioFeedForwardWeights& f) {
    be_.copy(x, h, bytes);
    be_.clamp(x, H, N, H, -clip, clip);
    be_.rmsnorm(x, N, H, H, &f.pre_layer_norm, kNormEps, x, H);
    clipped_linear(f.ffw_layer_1, x, N, H, wide, 4 * H);
    be_.silu(wide, 4 * H, N, 4 * H, wide, 4 * H);
    clipped_linear(f.ffw_layer_2, wide, N, 4 * H, a, H);
    be_.clamp(a, H, N, H, -clip, clip);
    be_.rmsnorm(a, N, H, H, &f.post_layer_norm, kNormEps, a, H);
    be_.scale(a, H, N, H, static_cast<float>(cfg_.residual_weight));
    be_.add(h, H, a, H, N, H, h, H);
  };

  feed_forward(l.feed_forward1);

  // Attention block: h += norm_post_attn(clamp(post(local_attention(norm_pre_attn(clamp(h)))))).
  be_.copy(x, h, bytes);
  be_.clamp(x, H, N, H, -clip, clip);
  be_.rmsnorm(x, N, H, H, &l.norm_pre_attn, kNormEps, x, H);
  const std::pair<const ClippedLinear*, float*> qkv[] = {
      {&l.q_proj, q}, {&l.k_proj, k}, {&l.v_proj, v}};
  for (const auto& [proj, dst] : qkv) {
    be_.copy(t, x, bytes);  // each projection clamps its own copy of the input
    clipped_linear(*proj, t, N, H, dst, H);
  }
  LocalAttentionArgs aa;
  aa.q = q;
  aa.ldq = H;
  aa.k = k;
  aa.ldk = H;
  aa.v = v;
  aa.ldv = H;
  aa.out = t;
  aa.ldo = H;
  aa.T = N;
  aa.n_heads = cfg_.num_attention_heads;
  aa.head_dim = cfg_.head_dim();
  aa.q_scale = q_scale_[static_cast<size_t>(i)];
  aa.k_scale = static_cast<float>(std::log(1.0 + std::exp(1.0)) / std::log(2.0));
  aa.rel_k = rel_k_[static_cast<size_t>(i)];
  aa.ld_rel = H;
  aa.window = cfg_.attention_window();
  aa.logit_cap = static_cast<float>(cfg_.attention_logit_cap);
  be_.local_attention(aa);
  clipped_linear(l.post, t, N, H, a, H);
  be_.clamp(a, H, N, H, -clip, clip);
  be_.rmsnorm(a, N, H, H, &l.norm_post_attn, kNormEps, a, H);
  be_.add(h, H, a, H, N, H, h, H);

  // Gemma4AudioLightConv1d: h += linear_end(silu(conv_norm(clamp(dwconv(glu(linear_start(
  // pre_layer_norm(h)))))))).
  be_.rmsnorm(h, N, H, H, &l.lconv_pre_layer_norm, eps, x, H);
  clipped_linear(l.linear_start, x, N, H, wide, 2 * H);
  be_.glu(wide, 2 * H, wide + H, 2 * H, N, H, t, H);
  be_.depthwise_conv1d_causal(t, H, N, H, l.depthwise_conv1d, a, H);
  be_.clamp(a, H, N, H, -clip, clip);
  be_.rmsnorm(a, N, H, H, &l.lconv_conv_norm, eps, a, H);
  be_.silu(a, H, N, H, a, H);
  clipped_linear(l.linear_end, a, N, H, x, H);
  be_.add(h, H, x, H, N, H, h, H);

  feed_forward(l.feed_forward2);
  be_.clamp(h, H, N, H, -clip, clip);
  be_.rmsnorm(h, N, H, H, &l.norm_out, kNormEps, h, H);
}

AudioEncoding AudioTower::encode(const float* features, int64_t V, bool keep) {
  FC_CHECK(V >= 1, "audio tower: a clip needs at least one valid feature frame (161 samples)");
  const int64_t H = cfg_.hidden_size, O = cfg_.output_proj_dims, E = text_hidden_;
  const int64_t N = conv_out(conv_out(V));
  scratch_.reset();
  float* h = scratch_.next_f32(N * H);
  float* y = scratch_.next_f32(N * O);
  float* emb = scratch_.next_f32(N * E);
  const size_t mark = 3;  // buffers 0..2 live across the call; the rest are reused per stage
  AudioEncoding out;
  out.n = N;
  auto to_host = [&](const float* src, int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    be_.to_host(v.data(), src, static_cast<size_t>(n) * 4);
    return v;
  };
  subsample(features, V, h);
  if (keep) out.subsample = to_host(h, N * H);
  for (int i = 0; i < cfg_.num_hidden_layers; ++i) {
    scratch_.rewind(mark);
    layer(i, h, N);
    if (keep) out.layers.push_back(to_host(h, N * H));
  }
  // output_proj (with bias), then embed_audio: RMSNorm without weight → embedding_projection.
  be_.linear(h, N, H, w_.output_proj, y, O);
  be_.add(y, O, output_bias_dev_, 0, N, O, y, O);  // ldb 0: the bias row broadcast
  out.tower = to_host(y, N * O);
  be_.rmsnorm(y, N, O, O, nullptr, static_cast<float>(cfg_.rms_norm_eps), y, O);
  be_.linear(y, N, O, w_.embed_projection, emb, E);
  out.embeds = to_host(emb, N * E);
  return out;
}

}  // namespace fc::gemma4
