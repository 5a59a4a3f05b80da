// Helpers shared by the NVFP4 CPU kernel tests (nvfp4_matmul_test, nvfp4_prefill_i8_test).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "quant/nvfp4.h"

namespace fc::cpu::test {

// An NVFP4 Weight viewing m's codes and block scales (no pre_quant_scale, no input_scale).
inline Weight nvfp4_weight_view(const quant::Nvfp4Matrix& m) {
  Weight w;
  w.data = m.packed;
  w.dtype = DType::kU8;
  w.rows = m.rows;
  w.cols = m.cols;
  w.ld = m.ld;
  w.name = "test.weight";
  w.format = WeightFormat::kNvfp4;
  w.block_scale = m.scales;
  w.scale_ld = m.scale_ld;
  w.global_scale = m.global_scale;
  return w;
}

// y and ref: [T, ldy]. Columns n >= N must still hold `pad`; the others must be within
// tol(t, n) (+ 1e-6 · |y0| when the product was accumulated onto y0) of ref.
template <typename Tol>
void expect_rows_near(const std::vector<float>& y, const std::vector<float>& ref,
                      const std::vector<float>& y0, int64_t T, int64_t N, int64_t ldy, bool acc,
                      float pad, Tol&& tol, const std::string& where) {
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t n = 0; n < ldy; ++n) {
      const size_t i = static_cast<size_t>(t * ldy + n);
      if (n >= N) {
        ASSERT_EQ(y[i], pad) << where;
        continue;
      }
      const float extra = acc ? 1e-6f * std::fabs(y0[i]) : 0.0f;
      ASSERT_NEAR(y[i], ref[i], tol(t, n) + extra) << where << " t=" << t << " n=" << n;
    }
  }
}

}  // namespace fc::cpu::test
