#include "engine/kv_budget.h"

#include <algorithm>

namespace fc {

int64_t activation_bytes(const gemma4::Config& c, int64_t step_tokens, int64_t logit_rows) {
  int64_t mlp = 0;
  int64_t attn = 0;
  for (const gemma4::LayerSpec& l : c.layers) {
    mlp = std::max<int64_t>(mlp, l.intermediate);
    attn = std::max<int64_t>(attn, int64_t{c.num_attention_heads} * l.head_dim);
  }
  if (c.enable_moe_block)
    mlp = std::max<int64_t>(mlp, int64_t{c.top_k_experts} * c.moe_intermediate_size);
  const int64_t H = c.hidden_size;
  // 8 residual-width buffers (residual, normed input, attention / MLP outputs, their norms,
  // the per-layer projection), 3 MLP-width ones (gate, up, activation), 4 attention-width ones
  // (q, k, v, attention output) and the per-layer-input rows of every layer.
  const int64_t per_token =
      8 * H + 3 * mlp + 4 * attn +
      int64_t{c.hidden_size_per_layer_input} * static_cast<int64_t>(c.layers.size());
  return 4 * (step_tokens * per_token + logit_rows * int64_t{c.vocab_size});
}

int64_t device_kv_budget(const DeviceMemory& m, double utilization, int64_t activations) {
  const int64_t in_use = m.total - m.free;
  const int64_t share = static_cast<int64_t>(utilization * static_cast<double>(m.total));
  return std::max<int64_t>(0, share - in_use - activations);
}

}  // namespace fc
