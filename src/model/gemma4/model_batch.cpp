// Model::forward around the kernel sequence (model.cpp compute()): the batch turned into the
// kernels' layout (positions, per-group block tables and write slots, logit and hidden rows), its
// upload, the read-back of logits and hidden states, and CUDA graphs for decode-sized steps.
//
// Graphs: a step whose sequences each bring at most kGraphMaxTokens tokens is padded to a bucket
// (GraphBucket: S sequences x Q tokens): sequence s owns rows [s·Q, s·Q + Q), its real tokens
// first; padding rows hold token 0 at position 0 with write slot -1 (kv_write skips them), and
// padding sequences have n_q = 0 (attention skips them). Every op is row-independent apart from
// attention, so padding rows compute values nobody reads. The first step of a bucket runs eagerly
// in the bucket's own buffers (sizing every buffer and the backend's workspace), then the same
// kernel sequence is recorded; later steps upload their index arrays into the bucket's fixed
// buffers and replay the recording. Logits are computed for all S·Q rows of a recorded step and
// only the requested rows are copied back.
//
// Multimodal steps (soft-token rows from an encoder, or an image block whose bidirectional mask
// meets the step's tokens) always run eagerly: their host embeddings and per-row key limits are
// uploaded with the index arrays and never reach a padded or recorded step. Decode steps after an
// image carry neither (they are causal text), so they keep the graphs.
#include <algorithm>
#include <map>
#include <tuple>

#include "core/error.h"
#include "model/gemma4/model.h"
#include "model/gemma4/model_internal.h"

namespace fc::gemma4 {

namespace {
constexpr int kSeqBuckets[] = {1,  2,  3,  4,  6,   8,   12,  16,  24,
                               32, 48, 64, 96, 128, 192, 256, 384, 512};
}  // namespace

GraphBucket graph_bucket(int n_seqs, int max_tokens_per_seq) {
  if (n_seqs < 1 || max_tokens_per_seq < 1 || max_tokens_per_seq > kGraphMaxTokens) return {};
  int q = 1;
  while (q < max_tokens_per_seq) q *= 2;
  for (int s : kSeqBuckets)
    if (s >= n_seqs) return s * q <= kGraphMaxRows ? GraphBucket{s, q} : GraphBucket{};
  return {};
}

Model::Plan Model::make_plan(const ForwardBatch& batch, const kv::KVStorage& kv,
                             GraphBucket pad) const {
  const Config& c = cfg_;
  const int n_groups = static_cast<int>(kv_layout_.size());
  const int B = kv.block_size();
  const int64_t V = c.vocab_size, L = c.num_hidden_layers;
  Plan p;
  p.n_seqs = static_cast<int>(batch.seqs.size());
  p.bucket = pad;
  p.tables.resize(static_cast<size_t>(n_groups));
  p.table_off.resize(static_cast<size_t>(n_groups));
  p.slots.resize(static_cast<size_t>(n_groups));
  p.capture_layers = batch.capture_layers;
  p.want_final_hidden = batch.want_final_hidden;
  // Padded layout: every sequence's table gets the same width (the widest one).
  int width = 0;
  for (const SeqInput& s : batch.seqs)
    for (const auto* tb : s.block_tables) width = std::max(width, static_cast<int>(tb->size()));
  p.table_width = width;
  const int rows_per_seq = pad.seqs > 0 ? pad.tokens : 0;
  const bool bidi = c.use_bidirectional_attention == "vision";
  for (const SeqInput& s : batch.seqs) {
    FC_CHECK(s.n > 0, "forward: a sequence brings no tokens");
    FC_CHECK(s.pos0 >= 0, "forward: negative position");
    FC_CHECK(static_cast<int>(s.block_tables.size()) == n_groups, "forward: sequence has ",
             s.block_tables.size(), " block tables, the model has ", n_groups, " KV groups");
    FC_CHECK(pad.seqs == 0 || s.n <= pad.tokens, "forward: ", s.n, " tokens in a bucket of ",
             pad.tokens);
    const int32_t begin = static_cast<int32_t>(p.ids.size());
    p.q_begin.push_back(begin);
    p.n_q.push_back(s.n);
    p.pos0.push_back(s.pos0);
    p.max_q = std::max(p.max_q, s.n);
    for (int i = 0; i < s.n; ++i) {
      FC_CHECK(s.tokens[i] >= 0 && s.tokens[i] < V, "forward: token id ", s.tokens[i],
               " outside the vocabulary [0, ", V, ")");
      // Gemma4Model embeds every placeholder id as the pad token (spec multimodal.md §1.3), also
      // without media; soft tokens then overwrite the rows that carry encoder output.
      p.ids.push_back(c.mm.is_placeholder(s.tokens[i]) ? c.pad_token_id : s.tokens[i]);
      p.pos.push_back(s.pos0 + i);
    }
    for (int i = s.n; i < rows_per_seq; ++i) {  // padding rows of this sequence
      p.ids.push_back(0);
      p.pos.push_back(0);
    }
    for (const SeqInput::SoftTokens& st : s.soft_tokens) {
      FC_CHECK(st.n > 0 && st.pos >= s.pos0 && st.pos + st.n <= s.pos0 + s.n && st.embeds,
               "forward: soft tokens at [", st.pos, ", ", st.pos + st.n,
               ") outside the new tokens [", s.pos0, ", ", s.pos0 + s.n, ")");
      p.soft.push_back({begin + st.pos - s.pos0, p.soft_rows, st.n, st.embeds});
      p.soft_rows += st.n;
    }
    if (bidi)
      for (auto [b, e] : s.bidi_blocks) {
        if (e <= s.pos0 || b >= s.pos0 + s.n) continue;  // not among this step's tokens
        FC_CHECK(e <= s.pos0 + s.n, "forward: the image block at [", b, ", ", e,
                 ") ends after this step's tokens [", s.pos0, ", ", s.pos0 + s.n,
                 ") (a bidirectional block must be computed in one step)");
        if (p.kv_limit.empty()) p.kv_limit.assign(static_cast<size_t>(begin), -1);
        p.kv_limit.resize(static_cast<size_t>(begin + s.n), -1);
        for (int q = std::max(b, s.pos0); q < e; ++q)
          p.kv_limit[static_cast<size_t>(begin + q - s.pos0)] = e - 1;
      }
    for (int g = 0; g < n_groups; ++g) {
      const std::vector<int32_t>& tb = *s.block_tables[static_cast<size_t>(g)];
      std::vector<int32_t>& tables = p.tables[static_cast<size_t>(g)];
      std::vector<int32_t>& slots = p.slots[static_cast<size_t>(g)];
      FC_CHECK(static_cast<int64_t>(tb.size()) * B >= s.pos0 + s.n,
               "forward: block table of group ", g, " covers ", tb.size() * B, " positions, need ",
               s.pos0 + s.n);
      p.table_off[static_cast<size_t>(g)].push_back(static_cast<int32_t>(tables.size()));
      tables.insert(tables.end(), tb.begin(), tb.end());
      if (pad.seqs > 0) tables.resize(tables.size() + (width - tb.size()), -1);
      for (int i = 0; i < s.n; ++i) {
        const int pos = s.pos0 + i;
        const int32_t blk = tb[static_cast<size_t>(pos / B)];
        FC_CHECK(blk >= 0, "forward: position ", pos, " of group ", g, " has no block");
        slots.push_back(blk * B + pos % B);
      }
      for (int i = s.n; i < rows_per_seq; ++i) slots.push_back(-1);
      // Every position a query will read must still be resident.
      const int w = kv_layout_[static_cast<size_t>(g)].sliding_window;
      const int lo = w > 0 ? std::max(0, s.pos0 - w + 1) : 0;
      for (int q = lo; q < s.pos0 + s.n; q += B)
        FC_CHECK(tb[static_cast<size_t>(q / B)] >= 0, "forward: position ", q, " of group ", g,
                 " was released but is still inside the attention window");
      p.max_keys = std::max(p.max_keys, s.pos0 + s.n - lo);
    }
    for (int r : s.logit_rows) {
      FC_CHECK(r >= 0 && r < s.n, "forward: logit row ", r, " outside [0, ", s.n, ")");
      p.logit_rows.push_back(begin + r);
    }
    for (int r : s.hidden_rows) {
      FC_CHECK(r >= 0 && r < s.n, "forward: hidden row ", r, " outside [0, ", s.n, ")");
      p.hidden_rows.push_back(begin + r);
    }
  }
  for (int s = p.n_seqs; s < pad.seqs; ++s) {  // padding sequences: no queries, no writes
    p.q_begin.push_back(static_cast<int32_t>(p.ids.size()));
    p.n_q.push_back(0);
    p.pos0.push_back(0);
    for (int i = 0; i < rows_per_seq; ++i) {
      p.ids.push_back(0);
      p.pos.push_back(0);
    }
    for (int g = 0; g < n_groups; ++g) {
      std::vector<int32_t>& tables = p.tables[static_cast<size_t>(g)];
      p.table_off[static_cast<size_t>(g)].push_back(static_cast<int32_t>(tables.size()));
      tables.resize(tables.size() + width, -1);
      p.slots[static_cast<size_t>(g)].resize(p.slots[static_cast<size_t>(g)].size() + rows_per_seq,
                                             -1);
    }
  }
  FC_CHECK(pad.seqs == 0 || (p.soft.empty() && p.kv_limit.empty()),
           "forward: a step with media or image-block masks must run eagerly");
  if (!p.kv_limit.empty()) p.kv_limit.resize(p.ids.size(), -1);
  if (pad.seqs > 0) p.max_q = pad.tokens;  // the hint must hold for every replay of the bucket
  for (int l : batch.capture_layers)
    FC_CHECK(l >= 0 && l <= L, "forward: capture layer ", l, " outside [0, ", L, "]");
  p.T = static_cast<int64_t>(p.ids.size());
  return p;
}

// ---- Graphs. ----

// MoE models run eagerly: the expert dispatch reads the routing back to the host, and padding
// rows (whose attention output is never written) must not reach a router.
bool Model::graphs_usable() const {
  return ((opt_.graphs && be_.supports_graphs()) || opt_.pad_batches) && !cfg_.enable_moe_block;
}

Model::GraphStats Model::graph_stats() const {
  return graphs_ ? graphs_->stats : GraphStats{};
}

namespace {

// Copies a host array into device buffer #slot of `mem` (capacity at least `cap` elements).
int32_t* put_i32(Backend& be, DeviceScratch& mem, size_t slot, const std::vector<int32_t>& host,
                 size_t cap) {
  int32_t* d = static_cast<int32_t*>(mem.get(slot, std::max<size_t>(1, cap) * 4));
  if (!host.empty()) be.to_device(d, host.data(), host.size() * 4);
  return d;
}

}  // namespace

// Soft-token rows, or an image block (on a model that attends bidirectionally within them) among
// the new tokens: such a step runs eagerly.
bool Model::has_media(const ForwardBatch& batch) const {
  const bool bidi = cfg_.use_bidirectional_attention == "vision";
  for (const SeqInput& s : batch.seqs) {
    if (!s.soft_tokens.empty()) return true;
    if (bidi)
      for (auto [b, e] : s.bidi_blocks)
        if (e > s.pos0 && b < s.pos0 + s.n) return true;
  }
  return false;
}

void Model::forward(const ForwardBatch& batch, kv::KVStorage& kv, ForwardOutput& out) {
  FC_CHECK(kv.groups().size() == kv_layout_.size(), "forward: KV storage has ", kv.groups().size(),
           " groups, the model needs ", kv_layout_.size());
  int max_n = 0;
  for (const SeqInput& s : batch.seqs) max_n = std::max(max_n, s.n);
  const GraphBucket bucket = graphs_usable() && !has_media(batch)
                                 ? graph_bucket(static_cast<int>(batch.seqs.size()), max_n)
                                 : GraphBucket{};
  if (bucket.seqs == 0) {
    // Eager: index arrays and the kernel sequence's buffers from the shared scratch arena.
    const Plan p = make_plan(batch, kv, {});
    scratch_->reset();
    DeviceInputs in;
    in.ids = scratch_->next_i32(p.ids);
    in.pos = scratch_->next_i32(p.pos);
    in.q_begin = scratch_->next_i32(p.q_begin);
    in.n_q = scratch_->next_i32(p.n_q);
    in.pos0 = scratch_->next_i32(p.pos0);
    for (size_t g = 0; g < kv_layout_.size(); ++g) {
      in.tables.push_back(scratch_->next_i32(p.tables[g]));
      in.table_off.push_back(scratch_->next_i32(p.table_off[g]));
      in.slots.push_back(scratch_->next_i32(p.slots[g]));
    }
    if (p.soft_rows > 0) {  // the encoder output, one upload per run
      const int64_t H = cfg_.hidden_size;
      in.soft_embeds = scratch_->next_f32(p.soft_rows * H);
      for (const Plan::SoftRows& sr : p.soft)
        be_.to_device(in.soft_embeds + sr.offset * H, sr.embeds,
                      static_cast<size_t>(sr.n) * static_cast<size_t>(H) * sizeof(float));
    }
    if (!p.kv_limit.empty()) in.kv_limit = scratch_->next_i32(p.kv_limit);
    const Outputs o = compute(p, in, kv, *scratch_, false, out);
    read_outputs(p, o, out);
    return;
  }
  if (!graphs_) graphs_ = std::make_unique<Graphs>();
  const Plan p = make_plan(batch, kv, bucket);
  ++graphs_->stats.padded_steps;
  auto& slot = graphs_->entries[{bucket.seqs, bucket.tokens, batch.capture_layers}];
  if (!slot) slot = std::make_unique<Graphs::Entry>(be_);
  Graphs::Entry& e = *slot;
  // Index arrays into the entry's fixed buffers; a wider table than they hold moves them (and
  // the recording that reads them has to be made again).
  if (p.table_width > e.table_width) {
    if (e.graph) be_.drop_graph(e.graph);
    e.graph = 0;
    e.table_width = std::max(p.table_width, 2 * std::max(e.table_width, 8));
  }
  const size_t S = static_cast<size_t>(bucket.seqs), T = static_cast<size_t>(p.T);
  DeviceInputs& in = e.in;
  in.ids = put_i32(be_, e.inputs_mem, 0, p.ids, T);
  in.pos = put_i32(be_, e.inputs_mem, 1, p.pos, T);
  in.q_begin = put_i32(be_, e.inputs_mem, 2, p.q_begin, S);
  in.n_q = put_i32(be_, e.inputs_mem, 3, p.n_q, S);
  in.pos0 = put_i32(be_, e.inputs_mem, 4, p.pos0, S);
  in.tables.resize(kv_layout_.size());
  in.table_off.resize(kv_layout_.size());
  in.slots.resize(kv_layout_.size());
  for (size_t g = 0; g < kv_layout_.size(); ++g) {
    in.tables[g] =
        put_i32(be_, e.inputs_mem, 5 + 3 * g, p.tables[g], S * static_cast<size_t>(e.table_width));
    in.table_off[g] = put_i32(be_, e.inputs_mem, 6 + 3 * g, p.table_off[g], S);
    in.slots[g] = put_i32(be_, e.inputs_mem, 7 + 3 * g, p.slots[g], T);
  }
  const bool record = be_.supports_graphs() && opt_.graphs;
  if (e.graph && be_.replay(e.graph)) {
    ++graphs_->stats.replays;
  } else {
    // First step of this bucket (or the recording went stale): run it eagerly in the entry's
    // buffers, which sizes them and the backend's workspace, then record the same sequence.
    if (e.graph) be_.drop_graph(e.graph);
    e.graph = 0;
    e.scratch.reset();
    e.outs = compute(p, in, kv, e.scratch, record, out);
    if (record) {
      be_.begin_capture();
      try {
        e.scratch.reset();
        e.outs = compute(p, in, kv, e.scratch, true, out);
      } catch (...) {
        be_.end_capture();
        throw;
      }
      e.graph = be_.end_capture();
      ++graphs_->stats.captures;
    }
  }
  read_outputs(p, e.outs, out);
}

void Model::read_outputs(const Plan& p, const Outputs& o, ForwardOutput& out) {
  const int64_t H = cfg_.hidden_size, V = cfg_.vocab_size;
  out.n_logit_rows = static_cast<int>(p.logit_rows.size());
  out.logits.resize(p.logit_rows.size() * static_cast<size_t>(V));
  if (o.logits_all_rows) {
    for (size_t r = 0; r < p.logit_rows.size(); ++r)
      be_.to_host(out.logits.data() + r * static_cast<size_t>(V), o.logits + p.logit_rows[r] * V,
                  static_cast<size_t>(V) * 4);
  } else if (!p.logit_rows.empty()) {
    be_.to_host(out.logits.data(), o.logits, out.logits.size() * 4);
  }
  out.n_hidden_rows = static_cast<int>(p.hidden_rows.size());
  auto rows_of = [&](const float* src, std::vector<float>& dst) {
    dst.resize(p.hidden_rows.size() * static_cast<size_t>(H));
    for (size_t r = 0; r < p.hidden_rows.size(); ++r)
      be_.to_host(dst.data() + r * static_cast<size_t>(H), src + p.hidden_rows[r] * H,
                  static_cast<size_t>(H) * 4);
  };
  if (p.want_final_hidden) rows_of(o.h, out.final_hidden);
  if (!o.captured.empty()) {  // recorded steps: the whole residual at each capture layer
    out.captured.assign(p.capture_layers.size(), {});
    for (size_t ci = 0; ci < p.capture_layers.size(); ++ci)
      rows_of(o.captured[ci], out.captured[ci]);
  }
}

}  // namespace fc::gemma4
