// The compute backend seam: every numeric op the model's forward pass needs, over raw device
// pointers, strides and caller-owned buffers (so a GPU implementation can run them inside CUDA
// graphs). Activations are fp32 [rows, cols] row-major with explicit row strides (elements).
// The CPU backend is the reference; a CUDA backend implements the same interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "core/dtype.h"

namespace fc {

// Memory of a device: `free` counts what the backend's own allocator holds for reuse.
struct DeviceMemory {
  int64_t free = 0, total = 0;
};

enum class WeightFormat : uint8_t {
  kDense,  // dtype F32 / BF16 / F16, row stride ld elements
  kNvfp4,  // packed E2M1 codes (dtype U8), row stride ld bytes; see the NVFP4 fields below
};

// A weight as the backend sees it: a 2-D [rows, cols] matrix or a vector (rows = 1), in the
// checkpoint's storage, resident where the backend computes.
struct Weight {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0, ld = 0;
  std::string name;  // checkpoint tensor name, for errors and dumps
  WeightFormat format = WeightFormat::kDense;
  // NVFP4 (spec weight-formats §2.3): W[n, k] = e2m1(code[n, k]) · e4m3(block_scale[n, k/16]) ·
  // global_scale; element 2j in the low nibble of byte j of a row.
  const uint8_t* block_scale = nullptr;  // F8_E4M3 [rows, scale_ld bytes] (cols/16 used)
  int64_t scale_ld = 0;
  float global_scale = 1.0f;  // ModelOpt weight_scale_2 (= 1 / CT weight_global_scale)
  float input_scale = 0.0f;   // ModelOpt input_scale (= 1 / CT input_global_scale); 0: none
  // AWQ pre_quant_scale [cols] (dtype pqs_dtype): the activation is multiplied by it first.
  const void* pre_quant_scale = nullptr;
  DType pqs_dtype = DType::kBF16;
  // Read only by row gathers (embed), never multiplied as a whole (an untied embedding table,
  // E2B's per-layer embeddings): a host backend may leave it where it is (CpuBackend::upload).
  bool gather_only = false;

  bool empty() const { return data == nullptr; }
  bool nvfp4() const { return format == WeightFormat::kNvfp4; }
  // Bytes the weight occupies (codes + scales for NVFP4), what one pass over it reads.
  int64_t bytes() const;
  // Row block [r0, r0+n) of a matrix (e.g. one expert out of a stacked [E*R, C] tensor).
  Weight slice_rows(int64_t r0, int64_t n) const;
};

// Inputs of one attention call over a paged KV cache (one layer, all sequences of the batch).
// q: [n_tokens, n_heads, head_dim]; out: [n_tokens, n_heads, head_dim].
// K/V caches: [num_blocks, block_size, n_kv_heads, head_dim] in kv_dtype (F32, BF16, or
// F8_E4M3 holding k / k_scale and v / v_scale).
// Query head h reads KV head h / (n_heads / n_kv_heads) (contiguous GQA groups).
struct AttentionArgs {
  const float* q = nullptr;
  int64_t ldq = 0;  // row stride of q per token (elements)
  float* out = nullptr;
  int64_t ldo = 0;
  const void* k_cache = nullptr;
  const void* v_cache = nullptr;
  DType kv_dtype = DType::kF32;
  float k_scale = 1.0f, v_scale = 1.0f;  // F8_E4M3 caches only: stored value · scale
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int block_size = 0;
  float scale = 1.0f;
  int sliding_window = 0;  // 0: full causal; W: query at p sees keys (p - W, p]
  // Per sequence s: tokens [q_begin[s], q_begin[s] + n_q[s]) of the batch are at positions
  // pos0[s] + i; the cache already holds positions [0, pos0[s] + n_q[s]) of that sequence.
  int n_seqs = 0;
  const int32_t* q_begin = nullptr;
  const int32_t* n_q = nullptr;
  const int32_t* pos0 = nullptr;
  const int32_t* block_tables = nullptr;  // flattened; sequence s starts at table_offset[s]
  const int32_t* table_offset = nullptr;
  // Optional, per batch row: the last position the query may also see ahead of itself (image
  // blocks attend bidirectionally on Gemma 4 26B/31B sliding layers): a query at p sees keys
  // (p - W, max(p, kv_limit[t])]. Those keys must be in the cache (the same step writes them).
  // nullptr: causal.
  const int32_t* kv_limit = nullptr;
  // Host-side hints for choosing a kernel (0: unknown); results never depend on them.
  int max_q_per_seq = 0;  // most query rows any sequence brings (1: a pure decode step)
  int max_keys = 0;       // most keys any query attends
};

// Bidirectional attention within segments (the vision encoder): batch rows [seg[i], seg[i+1])
// attend each other and nothing else. q: [T, n_heads, head_dim], k/v: [T, n_kv_heads, head_dim]
// (row strides ldq / ldk / ldv), out: [T, n_heads, head_dim]; softmax in fp32.
struct SegmentAttentionArgs {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t ldq = 0, ldk = 0, ldv = 0;
  float* out = nullptr;
  int64_t ldo = 0;
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 1.0f;
  int n_segments = 0;
  const int32_t* seg = nullptr;  // [n_segments + 1] row offsets (device memory)
};

// ---- Audio tower (Gemma 4 conformer, model/gemma4/audio_tower.cpp) ----
// Chunked local self-attention of the audio tower (HF Gemma4AudioAttention) without the chunking,
// which only shapes HF's tensors: query t sees key kv iff 0 <= t - kv < window (every key of the
// T rows is real audio; padded frames are not passed). Per head h, with q' = q · q_scale (per
// dimension) and k' = k · k_scale:
//   logit(t, kv) = q'·k' + q'·rel_k[t - kv]   (Transformer-XL relative-position term)
//   logit        = cap · tanh(logit / cap);   p = softmax over the visible keys (fp32)
//   out[t]       = Σ_kv p(t, kv) · v[kv]
// q, k, v, out: [T, n_heads·head_dim] with row strides; rel_k: [window, n_heads·head_dim], row d
// the (projected) relative-position key of distance d.
struct LocalAttentionArgs {
  const float* q = nullptr;
  int64_t ldq = 0;
  const float* k = nullptr;
  int64_t ldk = 0;
  const float* v = nullptr;
  int64_t ldv = 0;
  float* out = nullptr;
  int64_t ldo = 0;
  int64_t T = 0;
  int n_heads = 0, head_dim = 0;
  const float* q_scale = nullptr;  // [head_dim], device memory
  float k_scale = 1.0f;
  const float* rel_k = nullptr;
  int64_t ld_rel = 0;
  int window = 0;
  float logit_cap = 0.0f;  // > 0
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Device memory. alloc never returns null (throws fc::Error); memory is uninitialised.
  virtual void* alloc(size_t bytes) = 0;
  virtual void free(void* p) = 0;
  virtual void to_device(void* dst, const void* src, size_t bytes) = 0;
  virtual void to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // device to device
  // Makes a checkpoint tensor usable by the backend (CPU: the mmap'ed bytes as they are).
  virtual Weight upload(const Weight& host) = 0;
  // Device memory now (bytes); nullopt for a host backend, whose KV budget is a flag.
  virtual std::optional<DeviceMemory> memory() const { return std::nullopt; }

  // Recorded op sequences (CUDA graphs). When supports_graphs(), the ops issued between
  // begin_capture() and end_capture() are recorded instead of run; nothing in between may copy
  // between host and device, synchronise, or allocate. replay(id) runs the recording again with
  // the same pointers and shapes and returns false when it went stale (the backend had to move
  // memory the recording uses, e.g. grow its workspace): capture again then. drop_graph frees one.
  // Backends without graphs throw from all of these.
  virtual bool supports_graphs() const { return false; }
  virtual void begin_capture();
  virtual int64_t end_capture();
  virtual bool replay(int64_t id);
  virtual void drop_graph(int64_t id);

  // y[T, w.rows] (+)= x[T, w.cols] · wᵀ
  virtual void linear(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y,
                      int64_t ldy, bool accumulate = false) = 0;
  // Row-wise RMSNorm: y = x · (mean(x²) + eps)^-½ · w, w over the n columns (none if w null).
  virtual void rmsnorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const Weight* w,
                       float eps, float* y, int64_t ldy) = 0;
  // NeoX ("rotate_half") RoPE in place on x [T, n_heads, head_dim] (row stride ldx per token):
  // dim d < D/2 pairs with d + D/2 and angle pos[t] * inv_freq[d] (inv_freq has D/2 entries).
  virtual void rope(float* x, int64_t T, int64_t ldx, int n_heads, int head_dim, const int32_t* pos,
                    const float* inv_freq) = 0;
  // out[t, i] = gelu_tanh(gate[t, i]) * up[t, i]
  virtual void gelu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t T,
                        int64_t n, float* out, int64_t ldo) = 0;
  // out[t, i] = silu(gate[t, i]) * up[t, i], silu(x) = x / (1 + e^-x) (Llama-style drafter MLPs)
  virtual void silu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t T,
                        int64_t n, float* out, int64_t ldo) = 0;
  // y[t, i] = a[t, i] + b[t, i]
  virtual void add(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T, int64_t n,
                   float* y, int64_t ldy) = 0;
  // x[t, i] *= s
  virtual void scale(float* x, int64_t ldx, int64_t T, int64_t n, float s) = 0;
  // out[t, :] = table[ids[t], :] * scale  (table [V, n] in the checkpoint dtype)
  virtual void embed(const Weight& table, const int32_t* ids, int64_t T, float scale, float* out,
                     int64_t ldo) = 0;
  // x = c · tanh(x / c)
  virtual void softcap(float* x, int64_t ldx, int64_t T, int64_t n, float c) = 0;
  // Writes new K/V rows into the paged caches: row t goes to slot slots[t] (block*B + offset);
  // k/v: [T, n_kv_heads*head_dim] fp32 with row strides ldk/ldv, stored as cache_dtype (BF16:
  // rounded to nearest even; F8_E4M3: sat_e4m3(k / k_scale), sat_e4m3(v / v_scale), round to
  // nearest even, saturating at ±448); slot -1 skips the row.
  virtual void kv_write(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                        int64_t row_elems, const int32_t* slots, void* k_cache, void* v_cache,
                        DType cache_dtype, float k_scale = 1.0f, float v_scale = 1.0f) = 0;
  virtual void attention(const AttentionArgs& a) = 0;
  virtual void attention_segments(const SegmentAttentionArgs& a) = 0;
  // (The vision tower's clipped linears use clamp, declared with the audio ops below.)
  // Average pooling of a patch grid (vision pooler): x holds grid_h · grid_w rows in row-major
  // grid order; out row (r, c) of the (grid_h/k) × (grid_w/k) grid is
  // scale · Σ_{k×k window} x · fl(1/k²), the window summed row-major. grid sides divisible by k.
  virtual void avg_pool(const float* x, int64_t ldx, int grid_h, int grid_w, int k, int64_t n,
                        float scale, float* out, int64_t ldo) = 0;
  // x[t, i] = (x[t, i] - sub[i]) · mul[i]  (vision standardize; sub/mul vectors of n)
  virtual void sub_mul(float* x, int64_t ldx, int64_t T, int64_t n, const Weight& sub,
                       const Weight& mul) = 0;
  // MoE routing (Gemma 4): probs = softmax(logits[t, :E]) in fp32, top-k by probability,
  // weights renormalised to sum 1, then multiplied by per_expert_scale[idx].
  // idx/weights: [T, k] (ascending probability order not guaranteed; ties by lower id).
  virtual void moe_route(const float* logits, int64_t ldl, int64_t T, int E, int k,
                         const Weight& per_expert_scale, int32_t* idx, float* weights) = 0;
  // out[t] = Σ_j weights[t, j] · Expert_{idx[t, j]}(x[t]) with
  // Expert_e(x) = down[e](gelu_tanh(gate[e](x)) ⊙ up[e](x)); gate/up: E weights [I, H] each,
  // down: E weights [H, I] (dense or NVFP4). Contributions are added in ascending expert id.
  virtual void moe_experts(const float* x, int64_t ldx, int64_t T, const int32_t* idx,
                           const float* weights, int k, const Weight* gate, const Weight* up,
                           const Weight* down, int E, float* out, int64_t ldo) = 0;

  // ---- Audio tower ops (Gemma 4 conformer; model/gemma4/audio_tower.cpp) ----
  // x[t, i] = min(max(x[t, i], lo), hi) in place (ReLU is clamp(x, 0, +inf); also the vision
  // tower's Gemma4ClippableLinear bounds).
  virtual void clamp(float* x, int64_t ldx, int64_t T, int64_t n, float lo, float hi) = 0;
  // out[t, i] = silu(x[t, i]) = x / (1 + e^-x); out may alias x.
  virtual void silu(const float* x, int64_t ldx, int64_t T, int64_t n, float* out, int64_t ldo) = 0;
  // out[t, i] = a[t, i] · sigmoid(b[t, i]) (torch glu: a the first half, b the second).
  virtual void glu(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T, int64_t n,
                   float* out, int64_t ldo) = 0;
  // Row-wise LayerNorm (torch.nn.LayerNorm): y = (x − mean) · (var + eps)^-½ · w (+ b), biased
  // variance over the n columns; w / b null: none. y may alias x.
  virtual void layernorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const Weight* w,
                         const Weight* b, float eps, float* y, int64_t ldy) = 0;
  // Patches of a 2-D convolution over a channel-last input x [T, F, C] (contiguous), kernel k×k,
  // stride s, zero padding p, for output time rows t ∈ [t0, t0 + n_t): row (t − t0)·F_out + f of
  // out [n_t·F_out, C·k·k] holds x[s·t − p + i, s·f − p + j, c] at column (c·k + i)·k + j (zero
  // outside x), F_out = (F + 2p − k) / s + 1. The convolution is then linear(out, W[Cout, C·k·k])
  // (torch's [Cout, Cin, k, k] weight as it is stored).
  virtual void conv2d_patches(const float* x, int64_t T, int64_t F, int64_t C, int k, int s, int p,
                              int64_t t0, int64_t n_t, float* out) = 0;
  // Causal depthwise 1-D convolution over time (HF Gemma4AudioCausalConv1d: left zero padding
  // K − 1): out[t, c] = Σ_j<K w[c, j] · x[t − (K − 1) + j, c]; w: [C, K] (torch [C, 1, K]).
  // out must not alias x.
  virtual void depthwise_conv1d_causal(const float* x, int64_t ldx, int64_t T, int64_t C,
                                       const Weight& w, float* out, int64_t ldo) = 0;
  virtual void local_attention(const LocalAttentionArgs& a) = 0;
};

}  // namespace fc
