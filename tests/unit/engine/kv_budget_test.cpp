// Device KV sizing (engine/kv_budget.h): vLLM's --gpu-memory-utilization arithmetic and the
// activation estimate, by hand-computed numbers.
#include <gtest/gtest.h>

#include "engine/kv_budget.h"

namespace fc {
namespace {

gemma4::Config two_layers() {
  gemma4::Config c;
  c.hidden_size = 64;
  c.num_attention_heads = 4;
  c.vocab_size = 1000;
  c.hidden_size_per_layer_input = 8;
  gemma4::LayerSpec a, b;
  a.head_dim = 16;
  a.intermediate = 128;
  b.head_dim = 32;       // the widest attention
  b.intermediate = 256;  // the widest MLP
  c.layers = {a, b};
  return c;
}

TEST(KvBudget, ActivationEstimate) {
  gemma4::Config c = two_layers();
  // per token: 8·64 + 3·256 + 4·(4·32) + 8·2 = 512 + 768 + 512 + 16 = 1808 floats
  EXPECT_EQ(activation_bytes(c, 10, 3), 4 * (10 * 1808 + 3 * 1000));
  EXPECT_EQ(activation_bytes(c, 0, 0), 0);
  // MoE: top-k experts' intermediate counts when wider than the dense MLP.
  c.enable_moe_block = true;
  c.top_k_experts = 4;
  c.moe_intermediate_size = 100;  // 400 > 256
  EXPECT_EQ(activation_bytes(c, 1, 0), 4 * (512 + 3 * 400 + 512 + 16));
}

TEST(KvBudget, UtilizationShareLessWhatIsInUse) {
  DeviceMemory m;
  m.total = 1000;
  m.free = 700;  // 300 in use (weights)
  EXPECT_EQ(device_kv_budget(m, 0.9, 50), 900 - 300 - 50);
  EXPECT_EQ(device_kv_budget(m, 0.3, 0), 0);    // the share is all taken
  EXPECT_EQ(device_kv_budget(m, 0.2, 10), 0);   // never negative
  EXPECT_EQ(device_kv_budget(m, 1.0, 0), 700);  // everything free
}

}  // namespace
}  // namespace fc
