#include "spec/session.h"

#include <algorithm>

#include "core/error.h"

namespace fc {

kv::ManagerConfig make_kv_config(const gemma4::Model& model, const SessionOptions& opt) {
  kv::ManagerConfig mc;
  mc.block_size = opt.block_size;
  mc.max_rollback = opt.max_rollback;
  const int64_t full_blocks = (opt.max_tokens + opt.block_size - 1) / opt.block_size;
  for (const kv::GroupLayout& g : model.kv_layout()) {
    kv::GroupSpec gs;
    gs.sliding_window = g.sliding_window;
    if (g.sliding_window > 0) {
      // Each sequence keeps its window (+ rollback) plus a partial block at either end; the new
      // tokens of one step, at most max_step_tokens over all sequences, come on top.
      const int64_t B = opt.block_size;
      const int64_t per_seq = (g.sliding_window - 1 + opt.max_rollback + B - 1) / B + 2;
      const int64_t step = (opt.max_step_tokens + B - 1) / B + opt.max_seqs;
      gs.num_blocks = static_cast<int>(
          opt.sliding_tokens > 0
              ? (opt.sliding_tokens + B - 1) / B
              : std::min<int64_t>(full_blocks + opt.max_seqs, per_seq * opt.max_seqs + step));
    } else {
      gs.num_blocks = static_cast<int>(full_blocks);
    }
    mc.groups.push_back(gs);
  }
  return mc;
}

Session::Session(gemma4::Model& model, Backend& backend, const SessionOptions& opt)
    : model_(model), mgr_(make_kv_config(model, opt)) {
  std::vector<int> blocks;
  for (int g = 0; g < mgr_.num_groups(); ++g) blocks.push_back(mgr_.num_blocks(g));
  storage_ = std::make_unique<kv::KVStorage>(backend, model.kv_layout(), opt.block_size, blocks,
                                             opt.kv_dtype);
}

void Session::run(const std::vector<Step>& steps, gemma4::ForwardOutput& out,
                  const std::vector<int>& capture_layers, bool want_final_hidden,
                  const std::vector<StepMedia>& media) {
  FC_CHECK(media.empty() || media.size() == steps.size(), "Session::run: ", media.size(),
           " media entries for ", steps.size(), " steps");
  std::vector<std::pair<SeqId, int>> old_len;
  for (const Step& s : steps) {
    FC_CHECK(!s.tokens.empty(), "Session::run: sequence ", s.id, " brings no tokens");
    for (const auto& [id, len] : old_len)
      FC_CHECK(id != s.id, "Session::run: sequence ", s.id, " appears twice in one step");
    old_len.emplace_back(s.id, mgr_.length(s.id));
  }
  auto rollback = [&] {
    for (const auto& [id, len] : old_len)
      if (mgr_.length(id) != len) mgr_.truncate(id, len);
  };
  gemma4::ForwardBatch batch;
  batch.capture_layers = capture_layers;
  batch.want_final_hidden = want_final_hidden;
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    const int len = old_len[i].second;
    if (!mgr_.grow(s.id, len + static_cast<int>(s.tokens.size()))) {
      rollback();
      fail("Session::run: out of KV cache blocks for sequence ", s.id, " (", len, " + ",
           s.tokens.size(), " tokens)");
    }
    gemma4::SeqInput in;
    in.tokens = s.tokens.data();
    in.n = static_cast<int>(s.tokens.size());
    in.pos0 = len;
    for (int g = 0; g < mgr_.num_groups(); ++g)
      in.block_tables.push_back(&mgr_.block_table(s.id, g));
    in.logit_rows = s.logit_rows;
    in.hidden_rows = s.hidden_rows;
    if (!media.empty()) {
      in.soft_tokens = media[i].soft_tokens;
      in.bidi_blocks = media[i].bidi_blocks;
    }
    batch.seqs.push_back(std::move(in));
  }
  try {
    model_.forward(batch, *storage_, out);
  } catch (...) {
    rollback();
    throw;
  }
}

}  // namespace fc
