// KV cache sizing on a device, as vLLM's --gpu-memory-utilization means it: the KV cache gets
// what is left of `utilization` × total memory after the weights (and whatever else is allocated
// when the budget is taken) and the activations of the largest step. Pure arithmetic, so the
// rule is tested without a device.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "model/gemma4/config.h"

namespace fc {

// Bytes of activations one forward of `step_tokens` tokens may hold at once, with `logit_rows`
// rows of logits: per token the residual stream and its norms, q/k/v/attention output at the
// widest head size, the MLP's gate/up/activation (the widest layer, or top-k experts' worth for
// MoE), plus the per-layer-input rows; all fp32. An upper estimate, not a measurement.
int64_t activation_bytes(const gemma4::Config& c, int64_t step_tokens, int64_t logit_rows);

// KV bytes: utilization · total − (total − free) − activations, at least 0.
int64_t device_kv_budget(const DeviceMemory& m, double utilization, int64_t activations);

}  // namespace fc
