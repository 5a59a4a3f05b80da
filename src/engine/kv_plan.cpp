#include "engine/kv_plan.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"

namespace fc {
namespace {

int64_t cdiv(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Blocks one request of max_model_len holds in a group.
int64_t blocks_per_request(const KvGroupCost& g, const KvPlanRequest& r) {
  if (g.sliding_window <= 0) return cdiv(r.max_model_len, r.block_size);
  const int64_t live = std::min<int64_t>(
      int64_t{g.sliding_window} - 1 + r.max_rollback + r.step_tokens, r.max_model_len);
  return cdiv(live, r.block_size) + 1;
}

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1ull << 30));
  return buf;
}

// 4096 -> "4,096", as vLLM prints token counts.
std::string thousands(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > (s[0] == '-' ? 1 : 0); i -= 3) s.insert(i, ",");
  return s;
}

}  // namespace

int64_t kv_bytes_per_request(const KvPlanRequest& r) {
  int64_t bytes = 0;
  for (const KvGroupCost& g : r.groups)
    bytes += blocks_per_request(g, r) * r.block_size * g.bytes_per_token;
  return bytes;
}

int largest_fitting_max_model_len(KvPlanRequest r, int upper) {
  int lo = 1, hi = upper, best = 0;
  while (lo <= hi) {
    const int mid = lo + (hi - lo) / 2;
    r.max_model_len = mid;
    if (kv_bytes_per_request(r) <= r.budget_bytes) {
      best = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return best;
}

KvPlan plan_kv_cache(const KvPlanRequest& r) {
  FC_CHECK(r.block_size > 0 && r.max_model_len > 0 && r.max_num_seqs > 0 && r.step_tokens > 0,
           "plan_kv_cache: bad request");
  if (r.budget_bytes <= 0)
    fail(r.budget_flag, " leaves no memory for the KV cache (", gib(r.budget_bytes),
         "); give it a positive size");
  KvPlan p;
  p.bytes_per_request = kv_bytes_per_request(r);
  if (p.bytes_per_request > r.budget_bytes) {
    const int fits = largest_fitting_max_model_len(r, r.max_model_len);
    fail("one request of --max-model-len ", r.max_model_len, " needs ", gib(p.bytes_per_request),
         " of KV cache (", p.bytes_per_request, " bytes), more than ", r.budget_flag, " gives (",
         gib(r.budget_bytes), ")",
         fits > 0 ? str_cat("; the largest --max-model-len that fits is ", fits) : std::string(),
         "; raise the budget or lower --max-model-len");
  }
  p.max_concurrency =
      static_cast<double>(r.budget_bytes) / static_cast<double>(p.bytes_per_request);
  // Sliding pool: its share of the budget, at most what max_num_seqs sequences can hold at once
  // (each its window plus rollback and two partial blocks, the step's new tokens once).
  int64_t sliding_bpb = 0, full_bpb = 0, sliding_blocks = 0, sliding_cap = 0;
  for (const KvGroupCost& g : r.groups) {
    const int64_t bpb = g.bytes_per_token * r.block_size;
    if (g.sliding_window > 0) {
      sliding_bpb += bpb;
      const int64_t share = blocks_per_request(g, r);
      sliding_blocks = std::max<int64_t>(
          sliding_blocks, static_cast<int64_t>(p.max_concurrency * static_cast<double>(share)));
      const int64_t per_seq = cdiv(g.sliding_window - 1 + r.max_rollback, r.block_size) + 2;
      sliding_cap =
          std::max<int64_t>(sliding_cap, per_seq * r.max_num_seqs +
                                             cdiv(r.step_tokens, r.block_size) + r.max_num_seqs);
      sliding_blocks = std::max<int64_t>(std::min(sliding_blocks, sliding_cap), share);
    } else {
      full_bpb += bpb;
    }
  }
  p.sliding_tokens = sliding_blocks * r.block_size;
  if (full_bpb > 0) {
    const int64_t left = r.budget_bytes - sliding_blocks * sliding_bpb;
    p.full_tokens = left / full_bpb * r.block_size;
    // Rounding of the sliding share must not take the one request's full blocks away.
    FC_CHECK(p.full_tokens >= cdiv(r.max_model_len, r.block_size) * r.block_size,
             "plan_kv_cache: full-attention pool smaller than one request");
  }
  return p;
}

std::string describe_kv_plan(const KvPlanRequest& r, const KvPlan& p) {
  char conc[32];
  std::snprintf(conc, sizeof conc, "%.2fx", p.max_concurrency);
  std::string s = "KV cache: " + gib(r.budget_bytes) + " (" + r.budget_flag + "): ";
  if (p.full_tokens > 0) s += thousands(p.full_tokens) + " tokens in full-attention layers";
  if (p.full_tokens > 0 && p.sliding_tokens > 0) s += ", ";
  if (p.sliding_tokens > 0) s += thousands(p.sliding_tokens) + " in sliding-window layers";
  s += "; Maximum concurrency for " + thousands(r.max_model_len) + " tokens per request: " + conc;
  return s;
}

}  // namespace fc
