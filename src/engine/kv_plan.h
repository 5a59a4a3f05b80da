// How a KV memory budget is split between the two KV groups, as vLLM sizes its KV cache
// (vllm/v1/core/kv_cache_utils.py, vllm/v1/kv_cache_interface.py):
//  - start-up needs room for ONE request of max_model_len, no more: full-attention layers hold
//    cdiv(max_model_len, block) blocks, sliding layers cdiv(min(W - 1 + step, max_model_len),
//    block) + 1 (the window behind the newest step, a partial block at its start, and the step's
//    new tokens; vLLM's SlidingWindowSpec.max_memory_usage_bytes);
//  - --max-num-seqs caps how many requests run at once; it reserves nothing;
//  - "maximum concurrency" is the budget over one such request's bytes.
// fourcast keeps one block pool per group (vLLM shares one pool), so the budget is split in the
// proportion one max_model_len request uses, except that the sliding pool never gets more than
// max_num_seqs sequences could hold at once; the full-attention pool gets the rest. Pure
// arithmetic, tested without a model (tests/unit/engine/kv_plan_test.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fc {

struct KvGroupCost {
  int64_t bytes_per_token = 0;  // all layers of the group, K and V
  int sliding_window = 0;       // 0: full attention
};

struct KvPlanRequest {
  std::vector<KvGroupCost> groups;
  int64_t budget_bytes = 0;
  std::string budget_flag;  // e.g. "--cpu-kv-cache-gb 4", for messages
  int max_model_len = 0;    // tokens of one request (prompt + output)
  int block_size = 16;
  int step_tokens = 2048;  // most new tokens one step may schedule (max_num_batched_tokens)
  int max_rollback = 0;    // speculative positions a sliding group keeps on top of its window
  int max_num_seqs = 8;
};

struct KvPlan {
  int64_t full_tokens = 0;        // capacity of the full-attention pool (0: the model has none)
  int64_t sliding_tokens = 0;     // capacity of the sliding pool (0: the model has none)
  int64_t bytes_per_request = 0;  // one max_model_len request, both groups
  double max_concurrency = 0;     // budget / bytes_per_request
};

// KV bytes one request of `max_model_len` tokens holds at most (both groups, whole blocks).
int64_t kv_bytes_per_request(const KvPlanRequest& r);

// The largest max_model_len in [1, upper] whose request fits `budget_bytes`; 0 if none does
// (vLLM's estimate_max_model_len, a binary search).
int largest_fitting_max_model_len(KvPlanRequest r, int upper);

// Splits the budget. Throws fc::Error when the budget is not positive, or when one request of
// max_model_len does not fit: the message gives the bytes it needs, the budget, and the largest
// max_model_len that would fit (vLLM's check_enough_kv_cache_memory).
KvPlan plan_kv_cache(const KvPlanRequest& r);

// "Maximum concurrency for 4,096 tokens per request: 1.47x" (vLLM's log line), plus the pools.
std::string describe_kv_plan(const KvPlanRequest& r, const KvPlan& p);

}  // namespace fc
