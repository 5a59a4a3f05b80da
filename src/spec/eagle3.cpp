#include "spec/eagle3.h"

#include "backend/scratch.h"
#include "model/gemma4/binder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace fc::spec {
namespace {

bool is_float(DType t) {
  return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16;
}

int common_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<int>(i);
}

// Binds the drafter's tensors by name (speculators names; `midlayer.` for the older layout) and
// checks shapes and dtypes, naming the tensor and file in every error.
class Binder {
 public:
  Binder(const Eagle3Config& c, const Checkpoint& ckpt, Backend& be, Eagle3Weights& w)
      : c_(c), ckpt_(ckpt), be_(be), w_(w) {
    // Some exports keep the module prefix `model.` on the head's tensors.
    if (!ckpt_.find("fc.weight") && !ckpt_.find("fc.weight_packed") &&
        (ckpt_.find("model.fc.weight") || ckpt_.find("model.fc.weight_packed")))
      prefix_ = "model.";
  }
  const TensorInfo* find(const std::string& name) const {
    if (const TensorInfo* t = ckpt_.find(prefix_ + name)) return t;
    return ckpt_.find(name);
  }
  Weight dense(const std::string& name, std::vector<int64_t> shape) {
    const TensorInfo* t = find(name);
    if (!t) fail("missing tensor ", name, " in ", ckpt_.dir(), " (EAGLE-3 drafter)");
    if (!is_float(t->dtype))
      fail("tensor ", t->name, " in ", t->file, " has dtype ", dtype_name(t->dtype),
           "; dense weights must be F32, BF16 or F16");
    if (t->shape != shape)
      fail("tensor ", t->name, " in ", t->file, " has shape ", shape_str(t->shape), ", expected ",
           shape_str(shape), " (from ", c_.source, ")");
    Weight w;
    w.data = t->data;
    w.dtype = t->dtype;
    w.name = t->name;
    w.rows = shape.size() == 2 ? shape[0] : 1;
    w.cols = shape.back();
    w.ld = w.cols;
    return be_.upload(w);
  }
  // A linear module [N, K]: dense, or NVFP4 when the drafter's quantization config says so
  // (NVFP4 speculators keep lm_head, embed_tokens and d2t unquantized; spec weight-formats §7.3),
  // through the target's binder: the same tensor names, scale checks and errors.
  Weight linear(const std::string& module, int64_t N, int64_t K) {
    const bool packed = find(module + ".weight_packed") || find(module + ".weight_scale");
    if (!c_.quant.scheme_for(prefix_ + module).nvfp4) {
      if (packed)
        fail("module ", module, " of the EAGLE-3 drafter in ", ckpt_.dir(),
             " holds NVFP4 tensors but ",
             c_.quant.quantized() ? c_.quant.source + " excludes it"
                                  : "it has no quantization config");
      return dense(module + ".weight", {N, K});
    }
    gemma4::Binder nv(c_.quant, prefix_, ckpt_, be_, gemma4::LoadOptions{}, w_.owned,
                      w_.nvfp4_linears);
    return nv.linear(module, N, K);
  }

 private:
  const Eagle3Config& c_;
  const Checkpoint& ckpt_;
  Backend& be_;
  Eagle3Weights& w_;
  std::string prefix_;
};

kv::ManagerConfig kv_config(const Eagle3Options& o) {
  FC_CHECK(o.block_size > 0 && o.max_tokens > 0 && o.max_seqs > 0,
           "Eagle3Options: block_size, max_tokens and max_seqs must be positive");
  kv::ManagerConfig m;
  m.block_size = o.block_size;
  const int64_t blocks = (o.max_tokens + o.block_size - 1) / o.block_size + o.max_seqs;
  m.groups.push_back({static_cast<int>(blocks), 0});  // one full-attention group
  return m;
}

}  // namespace

std::vector<int32_t> eagle3_pair_keys(std::span<const int32_t> tokens, int n) {
  FC_CHECK(n >= 0 && (n == 0 || static_cast<size_t>(n) < tokens.size()), "eagle3_pair_keys: ", n,
           " keys need ", n + 1, " tokens, have ", tokens.size());
  std::vector<int32_t> keys(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t) {
    // splitmix64 finaliser of the pair, folded to 32 bits.
    uint64_t z = (static_cast<uint64_t>(static_cast<uint32_t>(tokens[t])) << 32) |
                 static_cast<uint32_t>(tokens[t + 1]);
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    keys[static_cast<size_t>(t)] = static_cast<int32_t>(static_cast<uint32_t>(z ^ (z >> 32)));
  }
  return keys;
}

// One request's rows in a drafter forward: positions [pos0, pos0 + n) with input `ids`.
struct Eagle3Drafter::Seq {
  RequestId id = 0;
  int pos0 = 0, n = 0;
  const int32_t* ids = nullptr;
  bool all_logits = false;  // logits for every row (record_logits), else the last row only
};

// Device buffers reused across forwards, grown on demand.
struct Eagle3Drafter::Scratch : DeviceScratch {
  using DeviceScratch::DeviceScratch;
};

Eagle3Drafter::Eagle3Drafter(const std::string& dir, const gemma4::Model& target, Backend& backend,
                             Eagle3Options options)
    : cfg_(load_eagle3_config(dir)), be_(backend), opt_(options), mgr_(kv_config(options)) {
  FC_CHECK(opt_.kv_dtype == DType::kF32 || opt_.kv_dtype == DType::kBF16,
           "EAGLE-3 drafter: KV dtype ", dtype_name(opt_.kv_dtype),
           " is not supported (F32, BF16)");
  const gemma4::Config& tc = target.config();
  aux_ids_ = check_eagle3_target(cfg_, tc);
  ckpt_ = Checkpoint::open_dir(dir);
  Binder b(cfg_, *ckpt_, be_, w_);
  const int64_t H = cfg_.hidden_size, Ht = cfg_.target_hidden_size, D = cfg_.head_dim;
  const int64_t nh = cfg_.num_attention_heads, nkv = cfg_.num_key_value_heads;
  const int64_t I = cfg_.intermediate_size, V = cfg_.vocab_size, Vd = cfg_.draft_vocab_size;
  const std::string p = cfg_.layer_prefix;
  if (!b.find("fc.weight") && !b.find("fc.weight_packed"))
    fail("missing tensor fc.weight in ", dir, " (EAGLE-3 drafter)");
  const TensorInfo* fc = b.find("fc.weight");
  if (fc && fc->shape.size() == 2 && fc->shape[1] != 3 * Ht && is_float(fc->dtype))
    fail("tensor ", fc->name, " in ", fc->file, " takes ", fc->shape[1],
         " inputs but the target needs 3 x ", tc.hidden_size, " = ", 3 * tc.hidden_size,
         " (drafter and target do not match)");
  w_.fc = b.linear("fc", H, 3 * Ht);
  w_.q_proj = b.linear(p + "self_attn.q_proj", nh * D, 2 * H);
  w_.k_proj = b.linear(p + "self_attn.k_proj", nkv * D, 2 * H);
  w_.v_proj = b.linear(p + "self_attn.v_proj", nkv * D, 2 * H);
  w_.o_proj = b.linear(p + "self_attn.o_proj", H, nh * D);
  if (cfg_.model_type == "qwen3") {
    w_.q_norm = b.dense(p + "self_attn.q_norm.weight", {D});
    w_.k_norm = b.dense(p + "self_attn.k_norm.weight", {D});
  }
  w_.gate_proj = b.linear(p + "mlp.gate_proj", I, H);
  w_.up_proj = b.linear(p + "mlp.up_proj", I, H);
  w_.down_proj = b.linear(p + "mlp.down_proj", H, I);
  w_.input_layernorm = b.dense(p + "input_layernorm.weight", {H});
  w_.hidden_norm = b.dense(p + "hidden_norm.weight", {H});
  w_.post_attention_layernorm = b.dense(p + "post_attention_layernorm.weight", {H});
  w_.norm = b.dense("norm.weight", {H});
  w_.lm_head = b.dense("lm_head.weight", {Vd, H});
  if (b.find("embed_tokens.weight")) {
    w_.embed_tokens = b.dense("embed_tokens.weight", {V, H});
    w_.own_embedding = true;
  } else {
    // vLLM shares the target's table (unscaled: EAGLE-3 has no sqrt(H) factor).
    if (tc.hidden_size != H)
      fail(dir, ": the drafter has no embed_tokens.weight and its hidden size ", H,
           " differs from the target's ", tc.hidden_size,
           ", so it cannot share the target's table");
    w_.embed_tokens = target.weights().embed_tokens;
  }
  // d2t: target_id = d + d2t[d] (I64 [V_d]); absent means the identity (no pruning).
  w_.draft_to_target.resize(static_cast<size_t>(Vd));
  if (const TensorInfo* d2t = b.find("d2t")) {
    if (d2t->dtype != DType::kI64 || d2t->shape != std::vector<int64_t>{Vd})
      fail("tensor ", d2t->name, " in ", d2t->file, " is ", dtype_name(d2t->dtype), " ",
           shape_str(d2t->shape), ", expected I64 [", Vd, "] (draft_vocab_size)");
    for (int64_t d = 0; d < Vd; ++d) {
      int64_t off;
      std::memcpy(&off, d2t->data + 8 * d, 8);
      const int64_t t = d + off;
      if (t < 0 || t >= tc.vocab_size)
        fail("tensor ", d2t->name, " in ", d2t->file, " maps draft token ", d, " to ", t,
             ", outside the target vocabulary [0, ", tc.vocab_size, ")");
      w_.draft_to_target[static_cast<size_t>(d)] = static_cast<int32_t>(t);
    }
  } else if (Vd != V) {
    fail("missing tensor d2t in ", dir, ": draft_vocab_size ", Vd, " != vocab_size ", V,
         " needs the draft-to-target map");
  } else {
    for (int64_t d = 0; d < Vd; ++d)
      w_.draft_to_target[static_cast<size_t>(d)] = static_cast<int32_t>(d);
  }
  // t2d (BOOL [V]) is redundant with d2t and ignored, as in vLLM.

  const std::vector<float> f = eagle3_inv_freq(cfg_.rope, cfg_.head_dim);
  inv_freq_ = static_cast<float*>(be_.alloc(f.size() * sizeof(float)));
  be_.to_device(inv_freq_, f.data(), f.size() * sizeof(float));
  kv::GroupLayout g;
  g.num_kv_heads = cfg_.num_key_value_heads;
  g.head_dim = cfg_.head_dim;
  g.layers = {0};
  kv_ = std::make_unique<kv::KVStorage>(be_, std::vector<kv::GroupLayout>{g}, opt_.block_size,
                                        std::vector<int>{mgr_.num_blocks(0)}, opt_.kv_dtype);
  scratch_ = std::make_unique<Scratch>(be_);
}

Eagle3Drafter::~Eagle3Drafter() {
  if (inv_freq_) be_.free(inv_freq_);
  if (pre_last_) be_.free(pre_last_);
}

void Eagle3Drafter::observe(RequestId id, std::span<const int32_t> tokens, const HiddenRows& h) {
  const int Ht = cfg_.target_hidden_size, W = 3 * Ht;
  FC_CHECK(h.captured.size() == 3, "EAGLE-3 observe: ", h.captured.size(),
           " captured blocks, expected 3 (capture_layers())");
  FC_CHECK(h.hidden_size == Ht, "EAGLE-3 observe: hidden size ", h.hidden_size, ", expected ", Ht);
  FC_CHECK(h.n >= 0 && h.pos0 >= 0 && static_cast<int64_t>(tokens.size()) >= h.pos0 + h.n,
           "EAGLE-3 observe: rows [", h.pos0, ", ", h.pos0 + h.n, ") but only ", tokens.size(),
           " tokens");
  for (const auto& c : h.captured)
    FC_CHECK(c.size() >= static_cast<size_t>(h.n) * Ht,
             "EAGLE-3 observe: captured block too small");
  if (h.n == 0) return;
  Req& r = reqs_[id];
  const int end = r.aux_pos0 + r.aux_rows(W);
  if (h.pos0 < r.aux_pos0 || h.pos0 > end) {
    // Recompute from an earlier position, or a gap: start the stored rows afresh here.
    r.aux.clear();
    r.aux_pos0 = h.pos0;
  } else {
    r.aux.resize(static_cast<size_t>(h.pos0 - r.aux_pos0) * W);
  }
  const size_t base = r.aux.size();
  r.aux.resize(base + static_cast<size_t>(h.n) * W);
  for (int i = 0; i < h.n; ++i)  // row = [h_a | h_b | h_c]
    for (int c = 0; c < 3; ++c)
      std::memcpy(r.aux.data() + base + static_cast<size_t>(i) * W + static_cast<size_t>(c) * Ht,
                  h.captured[static_cast<size_t>(c)].data() + static_cast<size_t>(i) * Ht,
                  static_cast<size_t>(Ht) * sizeof(float));
  r.obs_tokens.assign(tokens.begin(), tokens.begin() + h.pos0 + h.n);
}

void Eagle3Drafter::release(RequestId id) {
  reqs_.erase(id);
  if (mgr_.has_sequence(id)) mgr_.remove_sequence(id);
}

const std::vector<float>& Eagle3Drafter::recorded_logits(RequestId id) const {
  static const std::vector<float> kEmpty;
  auto it = reqs_.find(id);
  return it == reqs_.end() ? kEmpty : it->second.logits;
}

int Eagle3Drafter::kv_valid(RequestId id) const {
  auto it = reqs_.find(id);
  return it == reqs_.end() ? 0 : it->second.kv_valid;
}

int32_t Eagle3Drafter::argmax_target(const float* l) const {
  int best = 0;
  for (int d = 1; d < cfg_.draft_vocab_size; ++d)
    if (l[d] > l[best]) best = d;  // first maximum; d2t is increasing, so = target-vocab argmax
  return w_.draft_to_target[static_cast<size_t>(best)];
}

void Eagle3Drafter::record(Req& r, const float* l, int rows) const {
  const size_t V = static_cast<size_t>(cfg_.vocab_size),
               Vd = static_cast<size_t>(cfg_.draft_vocab_size);
  const size_t at = r.logits.size();
  r.logits.resize(at + rows * V, -std::numeric_limits<float>::infinity());
  for (int i = 0; i < rows; ++i)
    for (size_t d = 0; d < Vd; ++d)
      r.logits[at + i * V + static_cast<size_t>(w_.draft_to_target[d])] = l[i * Vd + d];
}

void Eagle3Drafter::propose(std::span<const ProposeInput> in,
                            std::vector<std::vector<int32_t>>& out) {
  const auto t0 = std::chrono::steady_clock::now();
  const int W = 3 * cfg_.target_hidden_size;
  const int Vd = cfg_.draft_vocab_size;
  out.assign(in.size(), {});
  // ---- Resynchronise each request and collect its catch-up rows [kv_valid, m). ----
  std::vector<Seq> seqs;
  std::vector<size_t> which;  // index into `in` of each sequence
  std::vector<int32_t> ids;   // shifted input ids of the catch-up rows, per sequence
  std::vector<float> aux;     // [T, 3 H_t]
  std::vector<size_t> id_off;
  for (size_t i = 0; i < in.size(); ++i) {
    const ProposeInput& pi = in[i];
    const int m = static_cast<int>(pi.tokens.size()) - 1;  // target KV covers [0, m)
    if (m < 1 || pi.k < 1) continue;
    auto it = reqs_.find(pi.id);
    if (it == reqs_.end()) continue;  // nothing observed yet
    Req& r = it->second;
    // KV position t (input x_{t+1}) stays valid while tokens[0..t+1] are unchanged; the last
    // row is always recomputed (its logits and `pre` start the chain).
    const int cp = common_prefix(r.seen, pi.tokens);
    r.kv_valid = std::max(0, std::min({r.kv_valid, cp - 1, m - 1}));
    // Aux row t belongs to tokens[0..t]: drop rows observed for another sequence.
    const int obs_cp = common_prefix(r.obs_tokens, pi.tokens);
    const int aux_end = std::min(r.aux_pos0 + r.aux_rows(W), obs_cp);
    r.aux.resize(static_cast<size_t>(std::max(0, aux_end - r.aux_pos0)) * W);
    if (opt_.prefix_caching && r.kv_valid == 0 && r.aux_pos0 > 0 && !mgr_.has_sequence(pi.id) &&
        r.aux_pos0 % opt_.block_size == 0) {
      // The target served [0, aux_pos0) from its prefix cache: so may the drafter's own cache.
      const std::vector<int32_t> keys = eagle3_pair_keys(pi.tokens, r.aux_pos0 + 1);
      if (mgr_.find_cached_prefix(keys) >= r.aux_pos0) {
        mgr_.add_sequence(pi.id);
        mgr_.attach_prefix(pi.id, keys, r.aux_pos0);
        r.kv_valid = r.aux_pos0;
      }
    }
    if (r.aux_pos0 > r.kv_valid || aux_end < m) continue;  // rows missing: no drafts this time
    if (!mgr_.has_sequence(pi.id)) mgr_.add_sequence(pi.id);
    if (mgr_.length(pi.id) > r.kv_valid) mgr_.truncate(pi.id, r.kv_valid);
    if (!mgr_.grow(pi.id, m + pi.k - 1)) continue;  // drafter KV full: verify without drafts
    Seq s;
    s.id = pi.id;
    s.pos0 = r.kv_valid;
    s.n = m - r.kv_valid;
    s.all_logits = opt_.record_logits;
    id_off.push_back(ids.size());
    ids.insert(ids.end(), pi.tokens.begin() + s.pos0 + 1, pi.tokens.begin() + m + 1);
    const float* rows = r.aux.data() + static_cast<size_t>(s.pos0 - r.aux_pos0) * W;
    aux.insert(aux.end(), rows, rows + static_cast<size_t>(s.n) * W);
    seqs.push_back(s);
    which.push_back(i);
  }
  for (size_t s = 0; s < seqs.size(); ++s) seqs[s].ids = ids.data() + id_off[s];
  if (seqs.empty()) return;

  // ---- Catch-up pass: fc(aux) hidden inputs; the last row of each sequence gives d_1. ----
  std::vector<float> logits;
  forward(seqs, aux.data(), nullptr, logits);
  size_t row = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const ProposeInput& pi = in[which[s]];
    Req& r = reqs_.at(pi.id);
    const int rows = seqs[s].all_logits ? seqs[s].n : 1;
    const float* last = logits.data() + (row + rows - 1) * static_cast<size_t>(Vd);
    if (opt_.record_logits) {
      r.logits.clear();
      record(r, logits.data() + row * static_cast<size_t>(Vd), rows);
    }
    row += static_cast<size_t>(rows);
    out[which[s]].push_back(argmax_target(last));
    const int m = static_cast<int>(pi.tokens.size()) - 1;
    r.kv_valid = m;
    if (opt_.prefix_caching) {
      // Register the full blocks of [0, m - 1): position m - 1 is recomputed by the next
      // propose() when no token arrived, so its block must stay private.
      const int keep =
          std::min(common_prefix(r.seen, pi.tokens) - 1, static_cast<int>(r.keys.size()));
      r.keys.resize(static_cast<size_t>(std::max(0, keep)));
      const std::vector<int32_t> more =
          eagle3_pair_keys(pi.tokens.subspan(r.keys.size()), m - static_cast<int>(r.keys.size()));
      r.keys.insert(r.keys.end(), more.begin(), more.end());
      mgr_.commit(pi.id, r.keys, m - 1);
    }
    r.seen.assign(pi.tokens.begin(), pi.tokens.end());
    // Keep only the last aux row (position m - 1): a repeated propose() recomputes it.
    const int drop = std::max(0, m - 1 - r.aux_pos0);
    r.aux.erase(r.aux.begin(), r.aux.begin() + static_cast<ptrdiff_t>(drop) * W);
    r.aux_pos0 += drop;
  }

  // ---- Chained steps: d_j at position m + j - 1, hidden = the previous step's `pre`. ----
  for (int j = 1;; ++j) {
    std::vector<Seq> next;
    std::vector<size_t> next_which, prev_row;
    std::vector<int32_t> step_ids;
    for (size_t s = 0; s < seqs.size(); ++s) {
      const ProposeInput& pi = in[which[s]];
      if (pi.k <= j) continue;
      step_ids.push_back(out[which[s]].back());
      Seq q;
      q.id = pi.id;
      q.pos0 = static_cast<int>(pi.tokens.size()) - 1 + j - 1;
      q.n = 1;
      next.push_back(q);
      next_which.push_back(which[s]);
      prev_row.push_back(s);
    }
    if (next.empty()) break;
    for (size_t s = 0; s < next.size(); ++s) next[s].ids = step_ids.data() + s;
    // Gather the fed-back rows (pre_last_ is overwritten by this forward).
    const int64_t H = cfg_.hidden_size;
    float* pre_in = static_cast<float*>(scratch_->get(99, next.size() * H * sizeof(float)));
    for (size_t s = 0; s < next.size(); ++s)
      be_.copy(pre_in + s * H, pre_last_ + prev_row[s] * H, static_cast<size_t>(H) * sizeof(float));
    forward(next, nullptr, pre_in, logits);
    for (size_t s = 0; s < next.size(); ++s) {
      const float* l = logits.data() + s * static_cast<size_t>(Vd);
      if (opt_.record_logits) record(reqs_.at(next[s].id), l, 1);
      out[next_which[s]].push_back(argmax_target(l));
    }
    seqs = std::move(next);
    which = std::move(next_which);
  }
  stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Eagle3Drafter::forward(const std::vector<Seq>& seqs, const float* aux_host,
                            const float* pre_in, std::vector<float>& logits_host) {
  const Eagle3Config& c = cfg_;
  const int64_t H = c.hidden_size, Ht = c.target_hidden_size, D = c.head_dim;
  const int64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads;
  const int64_t I = c.intermediate_size, Vd = c.draft_vocab_size;
  const int64_t qd = nh * D, kvd = nkv * D;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const int B = kv_->block_size();
  ++stats_.forward_calls;

  // ---- Host metadata: ids, positions, per-sequence ranges, block tables, write slots. ----
  std::vector<int32_t> ids, pos, q_begin, n_q, pos0, tables, table_off, slots, logit_rows,
      last_rows;
  for (const Seq& s : seqs) {
    const int32_t begin = static_cast<int32_t>(ids.size());
    q_begin.push_back(begin);
    n_q.push_back(s.n);
    pos0.push_back(s.pos0);
    const std::vector<int32_t>& tb = mgr_.block_table(s.id, 0);
    FC_CHECK(static_cast<int64_t>(tb.size()) * B >= s.pos0 + s.n, "EAGLE-3: KV table too short");
    table_off.push_back(static_cast<int32_t>(tables.size()));
    tables.insert(tables.end(), tb.begin(), tb.end());
    for (int i = 0; i < s.n; ++i) {
      FC_CHECK(s.ids[i] >= 0 && s.ids[i] < c.vocab_size, "EAGLE-3: token id ", s.ids[i],
               " outside the vocabulary");
      ids.push_back(s.ids[i]);
      const int p = s.pos0 + i;
      pos.push_back(p);
      slots.push_back(tb[static_cast<size_t>(p / B)] * B + p % B);
      if (s.all_logits || i == s.n - 1) logit_rows.push_back(begin + i);
    }
    last_rows.push_back(begin + s.n - 1);
  }
  const int64_t T = static_cast<int64_t>(ids.size());

  // ---- Device buffers. ----
  scratch_->reset();  // buffer 99 (the fed-back rows, see propose) is never reached
  auto buf = [&](int64_t n) { return scratch_->next_f32(n); };
  auto ibuf = [&](const std::vector<int32_t>& v) { return scratch_->next_i32(v); };
  float* g = buf(T * H);      // hidden input: fc(aux) or fed-back pre [T, H]
  float* x = buf(T * 2 * H);  // (input_layernorm(e) | hidden_norm(g)) [T, 2H]
  float* e = buf(T * H);      // token embedding [T, H]
  float* res = buf(T * H);    // residual stream [T, H]
  float* q = buf(T * qd);     // [T, n_h, D]
  float* k = buf(T * kvd);    // [T, n_kv, D]
  float* v = buf(T * kvd);
  float* att = buf(T * qd);
  float* a = buf(T * H);
  float* gate = buf(T * I);
  float* up = buf(T * I);
  int32_t* d_ids = ibuf(ids);
  int32_t* d_pos = ibuf(pos);
  int32_t* d_qb = ibuf(q_begin);
  int32_t* d_nq = ibuf(n_q);
  int32_t* d_p0 = ibuf(pos0);
  int32_t* d_tab = ibuf(tables);
  int32_t* d_toff = ibuf(table_off);
  int32_t* d_slots = ibuf(slots);

  // ---- 1. g = fc(concat(aux)) (target rows), or the fed-back pre (skip fc). ----
  if (aux_host) {
    float* in = buf(T * 3 * Ht);
    be_.to_device(in, aux_host, static_cast<size_t>(T * 3 * Ht) * 4);
    be_.linear(in, T, 3 * Ht, w_.fc, g, H);
  } else {
    be_.copy(g, pre_in, static_cast<size_t>(T * H) * 4);
  }
  // ---- 2-3. e = embed(token) unscaled; x = (input_layernorm(e) | hidden_norm(g)). ----
  be_.embed(w_.embed_tokens, d_ids, T, 1.0f, e, H);
  be_.rmsnorm(e, T, H, H, &w_.input_layernorm, eps, x, 2 * H);
  be_.rmsnorm(g, T, H, H, &w_.hidden_norm, eps, x + H, 2 * H);
  if (c.norm_before_residual)
    be_.rmsnorm(g, T, H, H, &w_.hidden_norm, eps, res, H);
  else
    be_.copy(res, g, static_cast<size_t>(T * H) * 4);
  // Attention over the drafter's own KV: q/k/v from the 2H-wide input, NeoX RoPE, 1/sqrt(D).
  be_.linear(x, T, 2 * H, w_.q_proj, q, qd);
  be_.linear(x, T, 2 * H, w_.k_proj, k, kvd);
  be_.linear(x, T, 2 * H, w_.v_proj, v, kvd);
  if (!w_.q_norm.empty()) {  // qwen3: per-head RMSNorm before RoPE
    be_.rmsnorm(q, T * nh, D, D, &w_.q_norm, eps, q, D);
    be_.rmsnorm(k, T * nkv, D, D, &w_.k_norm, eps, k, D);
  }
  be_.rope(q, T, qd, static_cast<int>(nh), static_cast<int>(D), d_pos, inv_freq_);
  be_.rope(k, T, kvd, static_cast<int>(nkv), static_cast<int>(D), d_pos, inv_freq_);
  be_.kv_write(k, kvd, v, kvd, T, kvd, d_slots, kv_->k(0), kv_->v(0), kv_->dtype());
  AttentionArgs aa;
  aa.q = q;
  aa.ldq = qd;
  aa.out = att;
  aa.ldo = qd;
  aa.k_cache = kv_->k(0);
  aa.v_cache = kv_->v(0);
  aa.kv_dtype = kv_->dtype();
  aa.n_heads = static_cast<int>(nh);
  aa.n_kv_heads = static_cast<int>(nkv);
  aa.head_dim = static_cast<int>(D);
  aa.block_size = B;
  aa.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  aa.n_seqs = static_cast<int>(seqs.size());
  aa.q_begin = d_qb;
  aa.n_q = d_nq;
  aa.pos0 = d_p0;
  aa.block_tables = d_tab;
  aa.table_offset = d_toff;
  be_.attention(aa);
  be_.linear(att, T, qd, w_.o_proj, a, H);
  be_.add(res, H, a, H, T, H, res, H);  // residual += attn
  // MLP: down(silu(gate(x)) * up(x)) on post_attention_layernorm(residual).
  be_.rmsnorm(res, T, H, H, &w_.post_attention_layernorm, eps, x, H);
  be_.linear(x, T, H, w_.gate_proj, gate, I);
  be_.linear(x, T, H, w_.up_proj, up, I);
  be_.silu_mul(gate, I, up, I, T, I, gate, I);
  be_.linear(gate, T, I, w_.down_proj, a, H);
  float* pre = e;  // pre = mlp + residual [T, H] (the embedding is no longer needed)
  be_.add(a, H, res, H, T, H, pre, H);

  // ---- 5. pre of each sequence's last row (fed back next step); logits of the wanted rows. ----
  const size_t need = seqs.size() * static_cast<size_t>(H);
  if (pre_last_cap_ < need) {
    if (pre_last_) be_.free(pre_last_);
    pre_last_ = static_cast<float*>(be_.alloc(need * 4));
    pre_last_cap_ = need;
  }
  for (size_t s = 0; s < last_rows.size(); ++s)
    be_.copy(pre_last_ + s * H, pre + last_rows[s] * H, static_cast<size_t>(H) * 4);
  const int64_t R = static_cast<int64_t>(logit_rows.size());
  float* rows = buf(R * H);
  for (int64_t r = 0; r < R; ++r)
    be_.copy(rows + r * H, pre + logit_rows[static_cast<size_t>(r)] * H,
             static_cast<size_t>(H) * 4);
  be_.rmsnorm(rows, R, H, H, &w_.norm, eps, rows, H);
  float* lg = buf(R * Vd);
  be_.linear(rows, R, H, w_.lm_head, lg, Vd);  // no soft-cap
  if (c.logit_scale != 1.0) be_.scale(lg, Vd, R, Vd, static_cast<float>(c.logit_scale));
  logits_host.resize(static_cast<size_t>(R * Vd));
  be_.to_host(logits_host.data(), lg, static_cast<size_t>(R * Vd) * 4);
}

}  // namespace fc::spec
