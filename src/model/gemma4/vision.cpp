#include "model/gemma4/vision.h"

#include <cmath>
#include <limits>

#include "backend/scratch.h"
#include "core/error.h"
#include "model/gemma4/binder.h"
#include "model/gemma4/model.h"

namespace fc::gemma4 {
namespace {

const char* kTower = "model.vision_tower.";

ClippedLinear clipped_linear(Binder& b, const Checkpoint& ckpt, const quant::QuantConfig& quant,
                             const std::string& module, int64_t N, int64_t K, bool clipped) {
  ClippedLinear l;
  // A dense float `.weight` of the full shape is dense whatever the quantization config says:
  // exports keep the tower in BF16 (the seeds' ModelOpt and compressed-tensors 31B cards)
  // without always naming it in their exclusion lists.
  const TensorInfo* t = ckpt.find(module + ".linear.weight");
  const bool dense = t && binder_detail::is_float_dtype(t->dtype) && t->shape.size() == 2 &&
                     t->shape[0] == N && t->shape[1] == K;
  l.w = dense || !quant.quantized() ? b.get(module + ".linear.weight", {N, K}, true)
                                    : b.linear(module + ".linear", N, K, true);
  l.clipped = clipped;
  if (clipped) {
    l.in_min = b.scalar(module + ".input_min");
    l.in_max = b.scalar(module + ".input_max");
    l.out_min = b.scalar(module + ".output_min");
    l.out_max = b.scalar(module + ".output_max");
    if (!(l.in_min <= l.in_max) || !(l.out_min <= l.out_max))
      fail("tensors ", module, ".{input,output}_{min,max} in ", ckpt.dir(),
           " give an empty clamp range");
  }
  return l;
}

}  // namespace

bool has_vision_tower(const Config& c, const Checkpoint& ckpt) {
  return c.mm.vision.has_value() &&
         ckpt.find(std::string(kTower) + "patch_embedder.input_proj.weight") != nullptr;
}

struct VisionTower::Scratch : DeviceScratch {
  using DeviceScratch::DeviceScratch;
};

VisionTower::VisionTower(const Config& text, const Checkpoint& ckpt, Backend& backend,
                         const LoadOptions& load)
    : text_hidden_(text.hidden_size), be_(backend) {
  FC_CHECK(text.mm.vision.has_value(), "the config of ", ckpt.dir(), " has no vision_config");
  vc_ = *text.mm.vision;
  const VisionConfig& v = vc_;
  const int64_t d = v.hidden_size, I = v.intermediate_size, hd = v.head_dim;
  const int64_t Hq = v.num_attention_heads, Hkv = v.num_key_value_heads;
  const int64_t patch_dim = 3 * int64_t{v.patch_size} * v.patch_size;
  Binder b(text.quant, "", ckpt, be_, load, w_.owned, w_.nvfp4_linears);  // absolute names
  const std::string T = kTower;
  w_.input_proj = b.get(T + "patch_embedder.input_proj.weight", {d, patch_dim}, true);
  w_.position_table =
      b.get(T + "patch_embedder.position_embedding_table", {2, v.position_embedding_size, d}, true);
  for (int i = 0; i < v.num_hidden_layers; ++i) {
    const std::string p = T + "encoder.layers." + std::to_string(i) + ".";
    VisionLayerWeights lw;
    lw.input_layernorm = b.get(p + "input_layernorm.weight", {d}, true);
    lw.post_attention_layernorm = b.get(p + "post_attention_layernorm.weight", {d}, true);
    lw.pre_feedforward_layernorm = b.get(p + "pre_feedforward_layernorm.weight", {d}, true);
    lw.post_feedforward_layernorm = b.get(p + "post_feedforward_layernorm.weight", {d}, true);
    const bool c = v.use_clipped_linears;
    lw.q_proj = clipped_linear(b, ckpt, text.quant, p + "self_attn.q_proj", Hq * hd, d, c);
    lw.k_proj = clipped_linear(b, ckpt, text.quant, p + "self_attn.k_proj", Hkv * hd, d, c);
    lw.v_proj = clipped_linear(b, ckpt, text.quant, p + "self_attn.v_proj", Hkv * hd, d, c);
    lw.o_proj = clipped_linear(b, ckpt, text.quant, p + "self_attn.o_proj", d, Hq * hd, c);
    lw.q_norm = b.get(p + "self_attn.q_norm.weight", {hd}, true);
    lw.k_norm = b.get(p + "self_attn.k_norm.weight", {hd}, true);
    lw.gate_proj = clipped_linear(b, ckpt, text.quant, p + "mlp.gate_proj", I, d, c);
    lw.up_proj = clipped_linear(b, ckpt, text.quant, p + "mlp.up_proj", I, d, c);
    lw.down_proj = clipped_linear(b, ckpt, text.quant, p + "mlp.down_proj", d, I, c);
    w_.layers.push_back(std::move(lw));
  }
  if (v.standardize) {
    w_.std_bias = b.get(T + "std_bias", {d}, true);
    w_.std_scale = b.get(T + "std_scale", {d}, true);
  }
  w_.embedding_projection =
      b.get("model.embed_vision.embedding_projection.weight", {text.hidden_size, d}, true);
  w_.parameter_count = b.params;
  RopeConfig rope;
  rope.theta = v.rope_theta;
  inv_freq_ = rope_inv_freq(rope, v.head_dim / 2);  // hd/4 frequencies per axis
  inv_freq_dev_ = static_cast<float*>(be_.alloc(inv_freq_.size() * sizeof(float)));
  be_.to_device(inv_freq_dev_, inv_freq_.data(), inv_freq_.size() * sizeof(float));
  scratch_ = std::make_unique<Scratch>(be_);
}

VisionTower::~VisionTower() {
  if (inv_freq_dev_) be_.free(inv_freq_dev_);
}

void VisionTower::linear(const float* x, int64_t T, int64_t ldx, const ClippedLinear& l, float* y,
                         int64_t ldy, float* tmp) {
  if (!l.clipped) {
    be_.linear(x, T, ldx, l.w, y, ldy);
    return;
  }
  // clamp(W · clamp(x, in_min, in_max), out_min, out_max) (Gemma4ClippableLinear)
  const int64_t K = l.w.cols;
  for (int64_t t = 0; t < T; ++t)
    be_.copy(tmp + t * K, x + t * ldx, static_cast<size_t>(K) * sizeof(float));
  be_.clamp(tmp, K, T, K, l.in_min, l.in_max);
  be_.linear(tmp, T, K, l.w, y, ldy);
  be_.clamp(y, ldy, T, l.w.rows, l.out_min, l.out_max);
}

void VisionTower::encode(const std::vector<const MediaInput*>& items, float* out) {
  encode_traced(items, out, nullptr);
}

void VisionTower::encode_traced(const std::vector<const MediaInput*>& items, float* out,
                                VisionTrace* trace) {
  const VisionConfig& v = vc_;
  const int64_t d = v.hidden_size, hd = v.head_dim, I = v.intermediate_size;
  const int64_t Hq = v.num_attention_heads, Hkv = v.num_key_value_heads, H = text_hidden_;
  const int64_t patch_dim = 3 * int64_t{v.patch_size} * v.patch_size;
  const int k = v.pooling_kernel_size;
  const float eps = static_cast<float>(v.rms_norm_eps);
  if (items.empty()) return;

  // ---- Host-side inputs: the [-1, 1] shift in fp32, positions, segment offsets. ----
  std::vector<int32_t> seg{0}, pos_x, pos_y, ids_x, ids_y;
  std::vector<int> out_rows;  // soft tokens per item
  int64_t P = 0;
  for (const MediaInput* m : items) {
    FC_CHECK(m->modality == "image" || m->modality == "video", "vision tower: cannot encode a ",
             m->modality, " item");
    const int64_t n = int64_t{m->grid_h} * m->grid_w;
    FC_CHECK(m->grid_h > 0 && m->grid_w > 0 && m->grid_h % k == 0 && m->grid_w % k == 0,
             "vision tower: patch grid ", m->grid_h, "x", m->grid_w,
             " is not a positive multiple of the pooling kernel ", k);
    FC_CHECK(static_cast<int64_t>(m->features.size()) == n * patch_dim,
             "vision tower: ", m->features.size(), " pixel values for ", n, " patches of ",
             patch_dim);
    FC_CHECK(static_cast<int64_t>(m->positions.size()) == n * 2,
             "vision tower: ", m->positions.size() / 2, " positions for ", n, " patches");
    FC_CHECK(m->num_tokens == n / (k * k), "vision tower: the item announces ", m->num_tokens,
             " soft tokens, its ", m->grid_h, "x", m->grid_w, " patches pool to ", n / (k * k));
    for (int64_t i = 0; i < n; ++i) {
      const int32_t x = m->positions[static_cast<size_t>(2 * i)];
      const int32_t y = m->positions[static_cast<size_t>(2 * i + 1)];
      FC_CHECK(x >= 0 && y >= 0 && x < v.position_embedding_size && y < v.position_embedding_size,
               "vision tower: patch position (", x, ", ", y, ") outside the ",
               v.position_embedding_size, "-entry position table");
      pos_x.push_back(x);
      pos_y.push_back(y);
      ids_x.push_back(x);
      ids_y.push_back(v.position_embedding_size + y);
    }
    P += n;
    seg.push_back(static_cast<int32_t>(P));
    out_rows.push_back(m->num_tokens);
  }
  int64_t N = 0;
  for (int n : out_rows) N += n;

  scratch_->reset();
  auto buf = [&](int64_t n) { return scratch_->next_f32(n); };
  float* pix = buf(P * patch_dim);
  {
    std::vector<float> shifted(static_cast<size_t>(P * patch_dim));
    size_t o = 0;
    for (const MediaInput* m : items)
      for (float f : m->features) shifted[o++] = 2.0f * (f - 0.5f);  // HF: 2 * (pv - 0.5), fp32
    be_.to_device(pix, shifted.data(), shifted.size() * sizeof(float));
  }
  const int64_t qd = Hq * hd, kvd = Hkv * hd;
  float* h = buf(P * d);
  float* x = buf(P * d);
  float* a = buf(P * d);
  float* pe = buf(P * d);
  float* q = buf(P * qd);
  float* kk = buf(P * kvd);
  float* vv = buf(P * kvd);
  float* att = buf(P * qd);
  float* g1 = buf(P * I);
  float* u1 = buf(P * I);
  float* tmp = buf(P * std::max<int64_t>({I, qd, d}));
  int32_t* d_px = scratch_->next_i32(pos_x);
  int32_t* d_py = scratch_->next_i32(pos_y);
  int32_t* d_ix = scratch_->next_i32(ids_x);
  int32_t* d_iy = scratch_->next_i32(ids_y);
  int32_t* d_seg = scratch_->next_i32(seg);
  auto to_host = [&](const float* src, int64_t rows, int64_t cols, std::vector<float>& dst) {
    dst.resize(static_cast<size_t>(rows * cols));
    be_.to_host(dst.data(), src, dst.size() * sizeof(float));
  };

  // ---- Patch embedder: h = input_proj(2(pv − 0.5)) + (T[0][x] + T[1][y]). ----
  be_.linear(pix, P, patch_dim, w_.input_proj, h, d);
  be_.embed(w_.position_table, d_ix, P, 1.0f, pe, d);
  be_.embed(w_.position_table, d_iy, P, 1.0f, x, d);
  be_.add(pe, d, x, d, P, d, pe, d);  // x_emb + y_emb
  be_.add(h, d, pe, d, P, d, h, d);
  if (trace) to_host(h, P, d, trace->patch_embed);

  // 2-D RoPE: each head's first half (hd/2 dims, NeoX pairs) by x, the second half by y.
  auto rope2d = [&](float* t, int64_t ld, int64_t heads) {
    for (int64_t hh = 0; hh < heads; ++hh) {
      be_.rope(t + hh * hd, P, ld, 1, static_cast<int>(hd / 2), d_px, inv_freq_dev_);
      be_.rope(t + hh * hd + hd / 2, P, ld, 1, static_cast<int>(hd / 2), d_py, inv_freq_dev_);
    }
  };

  // ---- Encoder layers (no final norm). ----
  for (size_t li = 0; li < w_.layers.size(); ++li) {
    const VisionLayerWeights& lw = w_.layers[li];
    be_.rmsnorm(h, P, d, d, &lw.input_layernorm, eps, x, d);
    linear(x, P, d, lw.q_proj, q, qd, tmp);
    linear(x, P, d, lw.k_proj, kk, kvd, tmp);
    linear(x, P, d, lw.v_proj, vv, kvd, tmp);
    be_.rmsnorm(q, P * Hq, hd, hd, &lw.q_norm, eps, q, hd);
    be_.rmsnorm(kk, P * Hkv, hd, hd, &lw.k_norm, eps, kk, hd);
    be_.rmsnorm(vv, P * Hkv, hd, hd, nullptr, eps, vv, hd);
    rope2d(q, qd, Hq);
    rope2d(kk, kvd, Hkv);
    SegmentAttentionArgs sa;
    sa.q = q;
    sa.k = kk;
    sa.v = vv;
    sa.ldq = qd;
    sa.ldk = kvd;
    sa.ldv = kvd;
    sa.out = att;
    sa.ldo = qd;
    sa.n_heads = static_cast<int>(Hq);
    sa.n_kv_heads = static_cast<int>(Hkv);
    sa.head_dim = static_cast<int>(hd);
    sa.scale = 1.0f;  // Gemma 4: the q/k norms carry the scale
    sa.n_segments = static_cast<int>(items.size());
    sa.seg = d_seg;
    be_.attention_segments(sa);
    linear(att, P, qd, lw.o_proj, a, d, tmp);
    be_.rmsnorm(a, P, d, d, &lw.post_attention_layernorm, eps, a, d);
    be_.add(h, d, a, d, P, d, h, d);
    be_.rmsnorm(h, P, d, d, &lw.pre_feedforward_layernorm, eps, x, d);
    linear(x, P, d, lw.gate_proj, g1, I, tmp);
    linear(x, P, d, lw.up_proj, u1, I, tmp);
    be_.gelu_mul(g1, I, u1, I, P, I, g1, I);
    linear(g1, P, I, lw.down_proj, a, d, tmp);
    be_.rmsnorm(a, P, d, d, &lw.post_feedforward_layernorm, eps, a, d);
    be_.add(h, d, a, d, P, d, h, d);
    if (trace) {
      trace->layers.emplace_back();
      to_host(h, P, d, trace->layers.back());
    }
  }

  // ---- Pooler: k×k average per image, × √d in fp32; then standardize. ----
  float* pooled = buf(N * d);
  const float root_d = static_cast<float>(std::sqrt(static_cast<double>(d)));
  int64_t row = 0, prow = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const MediaInput& m = *items[i];
    be_.avg_pool(h + prow * d, d, m.grid_h, m.grid_w, k, d, root_d, pooled + row * d, d);
    prow += int64_t{m.grid_h} * m.grid_w;
    row += out_rows[i];
  }
  if (trace) to_host(pooled, N, d, trace->pooled);
  if (v.standardize) be_.sub_mul(pooled, d, N, d, w_.std_bias, w_.std_scale);
  if (trace) to_host(pooled, N, d, trace->tower);

  // ---- embed_vision: Linear(RMSNorm_noweight(h)) to the text width. ----
  float* normed = buf(N * d);
  float* e = buf(N * H);
  be_.rmsnorm(pooled, N, d, d, nullptr, eps, normed, d);
  be_.linear(normed, N, d, w_.embedding_projection, e, H);
  be_.to_host(out, e, static_cast<size_t>(N * H) * sizeof(float));
  if (trace) trace->embed.assign(out, out + N * H);
}

double VisionTower::flops(const VisionConfig& v, int64_t text_hidden, int grid_h, int grid_w) {
  const double P = static_cast<double>(grid_h) * grid_w;
  const double d = v.hidden_size, I = v.intermediate_size, hd = v.head_dim;
  const double qd = v.num_attention_heads * hd, kvd = v.num_key_value_heads * hd;
  const double k2 = static_cast<double>(v.pooling_kernel_size) * v.pooling_kernel_size;
  const double per_layer = 2 * P * (d * qd + 2 * d * kvd + qd * d)  // q, k, v, o
                           + 2 * P * 3 * d * I                      // gate, up, down
                           + 2 * 2 * P * P * qd;                    // scores and P·V
  const double patch = 2 * P * 3.0 * v.patch_size * v.patch_size * d;
  return patch + v.num_hidden_layers * per_layer + 2 * (P / k2) * d * text_hidden;
}

}  // namespace fc::gemma4
