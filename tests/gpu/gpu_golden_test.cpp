// The golden fixtures end to end on the GPU: the transformers logits (fp32, eager) of each
// fixture prompt, prefilled in one step and in chunks of 3, then 16 greedy tokens — as
// tests/golden/golden_test.cpp and nvfp4_golden_test.cpp do on the CPU. Two configurations:
//  - exact_linear (fp32 CUDA-core linears): the CPU's tolerance, 1e-3 · max |logit|;
//  - default (cuBLAS with 16-bit activations for prefill rows above 8): 3e-2 · max |logit|, and
//    greedy tokens are only reported, not required (bf16 activation rounding can flip near-ties).
// Skipped (exit 0) without a GPU.
#include <gtest/gtest.h>

#include "tests/common/golden_io.h"

#include <cstdlib>
#include <cstring>

#include "gpu_test_util.h"
#include "io/safetensors.h"
#include "model/gemma4/model.h"
#include "spec/session.h"

namespace fc::gputest {
namespace {

using test::read_f32;
using test::read_ids;

// FOURCAST_SOURCE_DIR (set by scripts/gpu/test.sh) overrides the configure-time source folder, so
// a build carried to another machine finds this checkout's fixtures.
const std::string kFixtures =
    std::string(std::getenv("FOURCAST_SOURCE_DIR") ? std::getenv("FOURCAST_SOURCE_DIR")
                                                   : FC_SOURCE_DIR) +
    "/tests/fixtures/";

int32_t argmax(const float* x, int64_t n) {
  return static_cast<int32_t>(std::max_element(x, x + n) - x);
}

struct Param {
  const char* fixture;
  bool exact;
};

void PrintTo(const Param& p, std::ostream* os) {
  *os << p.fixture << (p.exact ? " exact" : " fast");
}

class GpuGolden : public ::testing::TestWithParam<Param> {};

TEST_P(GpuGolden, LogitsChunkedPrefillAndGreedy) {
  FC_REQUIRE_GPU();
  const Param p = GetParam();
  const std::string dir = kFixtures + p.fixture;
  cuda::CudaOptions o;
  o.exact_linear = p.exact;
  cuda::CudaBackend be(o);
  gemma4::Model model(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
  const int64_t V = model.config().vocab_size;
  const double tol = p.exact ? 1e-3 : 3e-2;
  auto golden = SafetensorsFile::open(dir + "/golden.safetensors");
  for (int pi = 0; pi < 2; ++pi) {
    const std::string k = "p" + std::to_string(pi) + ".";
    const std::vector<int32_t> ids = read_ids(*golden, k + "ids");
    const std::vector<float> want = read_f32(*golden, k + "logits");
    const std::vector<int32_t> greedy = read_ids(*golden, k + "greedy");
    const int T = static_cast<int>(ids.size());
    for (int chunk : {T, 3}) {
      SessionOptions so;
      so.block_size = 4;
      so.max_tokens = 256;
      so.max_seqs = 1;
      so.max_step_tokens = 32;
      Session s(model, be, so);
      s.add(1);
      gemma4::ForwardOutput out;
      for (int b = 0; b < T; b += chunk) {
        Session::Step st;
        st.id = 1;
        st.tokens.assign(ids.begin() + b, ids.begin() + std::min(T, b + chunk));
        for (int r = 0; r < static_cast<int>(st.tokens.size()); ++r) st.logit_rows.push_back(r);
        s.run({st}, out);
        const size_t n = st.tokens.size() * static_cast<size_t>(V);
        const double e = rel_err(out.logits.data(), want.data() + static_cast<size_t>(b) * V, n);
        EXPECT_LE(e, tol) << p.fixture << " prompt " << pi << " chunk " << chunk << " at " << b;
      }
      int32_t next = argmax(out.logits.data() + (out.n_logit_rows - 1) * V, V);
      int matched = 0;
      for (size_t g = 0; g < greedy.size(); ++g) {
        if (next != greedy[g]) break;
        ++matched;
        Session::Step d{1, {next}, {0}, {}};
        s.run({d}, out);
        next = argmax(out.logits.data(), V);
      }
      RecordProperty(k + "greedy_matched_" + std::to_string(chunk), matched);
      if (p.exact) {
        EXPECT_EQ(matched, static_cast<int>(greedy.size())) << p.fixture << " prompt " << pi;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuGolden,
                         ::testing::Values(Param{"kitchen-sink", true}, Param{"mini-31b", true},
                                           Param{"mini-e2b", true}, Param{"mini-26b", true},
                                           Param{"nvfp4/modelopt-31b-awq", true},
                                           Param{"nvfp4/ct-26b", true},
                                           Param{"kitchen-sink", false}, Param{"mini-26b", false}),
                         [](const auto& info) {
                           std::string n = std::string(info.param.fixture) +
                                           (info.param.exact ? "_exact" : "_fast");
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace
}  // namespace fc::gputest
