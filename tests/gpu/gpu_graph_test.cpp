// CUDA graph replay of decode and verification steps equals eager execution on the GPU: the step
// script of tests/common/step_script.h (prefill, decode at batch sizes 1..11 twice, verification
// steps with captures and rollbacks) on a model with graphs against the same checkpoint with
// graphs off. Both run the same kernels; the split-key decode attention may choose another split
// count from the step's key-count hint, so logits agree to fp32 summation order. Also checks that
// steps were recorded and replayed. Skipped (exit 0) without a GPU.
#include <gtest/gtest.h>

#include "tests/common/step_script.h"

#include <cstdlib>

#include "gpu_test_util.h"
#include "io/safetensors.h"
#include "model/gemma4/model.h"

namespace fc::gputest {
namespace {

const std::string kFixtures =
    std::string(std::getenv("FOURCAST_SOURCE_DIR") ? std::getenv("FOURCAST_SOURCE_DIR")
                                                   : FC_SOURCE_DIR) +
    "/tests/fixtures/";

class GpuGraphs : public ::testing::TestWithParam<const char*> {};

TEST_P(GpuGraphs, ReplayEqualsEager) {
  FC_REQUIRE_GPU();
  const std::string dir = kFixtures + GetParam();
  cuda::CudaBackend be;
  auto ckpt = std::shared_ptr<const Checkpoint>(Checkpoint::open_dir(dir));
  gemma4::ModelOptions eager;
  eager.graphs = false;
  gemma4::Model got(gemma4::load_config(dir), ckpt, be);
  gemma4::Model want(gemma4::load_config(dir), ckpt, be, eager);
  test::compare_step_script(got, want, be, be, 1e-4);
  const gemma4::Model::GraphStats st = got.graph_stats();
  EXPECT_EQ(st.padded_steps, 15);
  EXPECT_GE(st.captures, 7);  // one per (bucket, capture set) at least
  EXPECT_GE(st.replays, 6);   // the second pass over the decode batch sizes
  EXPECT_EQ(want.graph_stats().captures, 0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuGraphs,
                         ::testing::Values("mini-31b", "mini-e2b", "nvfp4/modelopt-e2b"));

}  // namespace
}  // namespace fc::gputest
