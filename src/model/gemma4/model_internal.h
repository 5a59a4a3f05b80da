// Model's internal batch structures, shared by model.cpp (the kernel sequence) and
// model_batch.cpp (planning, upload, read-back, graphs). Not part of the model's interface.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "backend/scratch.h"

#include "model/gemma4/model.h"

namespace fc::gemma4 {

// One forward batch in the kernels' layout. Row t of the batch is token ids[t] at position
// pos[t]; sequence s owns rows [q_begin[s], q_begin[s] + n_q[s]). Per KV group g: the block
// tables of all sequences flattened (sequence s from table_off[g][s]) and each row's write slot
// (block · B + offset; -1: padding row, not written).
struct Model::Plan {
  int n_seqs = 0;  // real sequences (a padded plan has bucket.seqs entries in q_begin)
  int64_t T = 0;   // rows, padding included
  GraphBucket bucket;
  std::vector<int32_t> ids, pos, q_begin, n_q, pos0;
  std::vector<std::vector<int32_t>> tables, table_off, slots;
  std::vector<int32_t> logit_rows, hidden_rows;  // batch rows, in output order
  std::vector<int> capture_layers;
  bool want_final_hidden = false;
  int table_width = 0;  // widest block table (padded plans give every sequence this width)
  int max_q = 0;        // attention hints (AttentionArgs)
  int max_keys = 0;
  // Multimodal (eager plans only: forward() never pads or records a step that has either).
  // Soft-token runs: batch rows [row, row + n) take rows [offset, offset + n) of the uploaded
  // encoder output (host source `embeds`, [n, H], unscaled) instead of their token embedding.
  struct SoftRows {
    int64_t row = 0, offset = 0;
    int n = 0;
    const float* embeds = nullptr;
  };
  std::vector<SoftRows> soft;
  int64_t soft_rows = 0;          // Σ n
  std::vector<int32_t> kv_limit;  // per row, the last key an image-block row sees (-1: causal);
                                  // empty when no image block meets this step's tokens
};

struct Model::DeviceInputs {
  int32_t *ids = nullptr, *pos = nullptr, *q_begin = nullptr, *n_q = nullptr, *pos0 = nullptr;
  std::vector<int32_t*> tables, table_off, slots;  // per KV group

  // Multimodal: [Plan::soft_rows, H] encoder output, or null; [T] Plan::kv_limit, or null (causal).
  float* soft_embeds = nullptr;
  int32_t* kv_limit = nullptr;
};

// Where compute() leaves its results (device memory).
struct Model::Outputs {
  float* h = nullptr;       // [T, H] post-final-norm states
  float* logits = nullptr;  // [rows, V]: every batch row if logits_all_rows, else the logit rows
  bool logits_all_rows = false;
  std::vector<float*> captured;  // recorded steps: [T, H] residual entering each capture layer
};

// Recorded steps by (bucket, capture layers), each with its own buffers (model_batch.cpp).
struct Model::Graphs {
  struct Entry {
    explicit Entry(Backend& be) : scratch(be), inputs_mem(be) {}
    DeviceScratch scratch;     // the kernel sequence's buffers (fixed once sized)
    DeviceScratch inputs_mem;  // the index arrays, fixed capacity (table width below)
    DeviceInputs in;
    Outputs outs;
    int table_width = -1;  // per-sequence table capacity the inputs were sized for
    int64_t graph = 0;     // 0: not recorded yet
  };
  using Key = std::tuple<int, int, std::vector<int>>;  // bucket seqs, tokens, capture layers
  std::map<Key, std::unique_ptr<Entry>> entries;
  GraphStats stats;
};

}  // namespace fc::gemma4
