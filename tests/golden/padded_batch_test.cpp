// The padded bucket layout of decode-sized steps (what CUDA graphs replay: model_batch.cpp)
// computes what the plain layout computes, on the CPU: every fixture without MoE, a script of
// prefill, decode at batch sizes 1..11 and verification steps with hidden-state captures and
// rollbacks (tests/common/step_script.h). The CPU kernels may pick another blocking for the
// padded row count, so logits agree to fp32 summation-order differences, argmax exactly. On a CPU
// with AMX tiles the padded 8- and 16-row steps of the NVFP4 fixture take the tiles where the
// plain 5-, 7- and 11-row ones take the direct kernels (nvfp4_direct_max_rows): the same products
// summed in another order, measured up to 2.6e-5 of the largest logit / hidden value.
#include <gtest/gtest.h>

#include "tests/common/step_script.h"

#include "backend/cpu/cpu_backend.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "model/gemma4/model.h"

namespace fc {
namespace {

const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";

class PaddedBatch : public ::testing::TestWithParam<const char*> {};

TEST_P(PaddedBatch, EqualsPlainLayout) {
  const std::string dir = kFixtures + GetParam();
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  auto ckpt = std::shared_ptr<const Checkpoint>(Checkpoint::open_dir(dir));
  gemma4::ModelOptions padded;
  padded.pad_batches = true;
  gemma4::Model got(gemma4::load_config(dir), ckpt, be, padded);
  gemma4::Model want(gemma4::load_config(dir), ckpt, be);
  const int steps = test::compare_step_script(got, want, be, be, 5e-5);
  EXPECT_GT(steps, 20);
  // Every decode and verification step (12 + 3) went through the padded layout, none eagerly.
  EXPECT_EQ(got.graph_stats().padded_steps, 15);
  EXPECT_EQ(want.graph_stats().padded_steps, 0);
  EXPECT_EQ(got.graph_stats().captures, 0);  // the CPU records nothing
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PaddedBatch,
                         ::testing::Values("mini-31b", "mini-e2b", "nvfp4/modelopt-e2b"));

}  // namespace
}  // namespace fc
