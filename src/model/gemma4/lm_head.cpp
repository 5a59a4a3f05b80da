#include "model/gemma4/lm_head.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "quant/nvfp4.h"

namespace fc::gemma4 {
namespace {

// Row r of a dense [rows, cols] tensor (row stride ld elements) as fp32.
void widen_row(const TensorInfo& t, int64_t ld, int64_t r, int64_t cols, float* out) {
  const uint8_t* p = t.data + r * ld * int64_t{dtype_bits(t.dtype) / 8};
  for (int64_t k = 0; k < cols; ++k) {
    if (t.dtype == DType::kF32) {
      std::memcpy(&out[k], p + 4 * k, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, p + 2 * k, 2);
      out[k] = t.dtype == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
}

}  // namespace

LmHeadDType parse_lm_head_dtype(const std::string& s) {
  if (s == "auto") return LmHeadDType::kCheckpoint;
  if (s == "nvfp4") return LmHeadDType::kNvfp4;
  fail("--lm-head-dtype: '", s, "' is not one of auto, nvfp4");
}

const char* lm_head_dtype_name(LmHeadDType d) {
  return d == LmHeadDType::kNvfp4 ? "nvfp4" : "auto";
}

Weight nvfp4_lm_head(const Weight& head, const Checkpoint& ckpt, Backend& backend,
                     std::vector<std::vector<uint8_t>>& owned) {
  if (head.nvfp4()) return head;
  const TensorInfo& t = ckpt.get(head.name);
  FC_CHECK(t.dtype == DType::kF32 || t.dtype == DType::kBF16 || t.dtype == DType::kF16,
           "--lm-head-dtype nvfp4: tensor ", t.name, " has dtype ", dtype_name(t.dtype),
           ", expected F32, BF16 or F16");
  const int64_t V = head.rows, H = head.cols;
  FC_CHECK(H % 16 == 0, "--lm-head-dtype nvfp4: ", t.name, " has ", H,
           " columns, not a multiple of 16");
  FC_CHECK(head.ld == H && static_cast<int64_t>(t.numel) == V * H,
           "--lm-head-dtype nvfp4: ", t.name, " is not a plain [", V, ", ", H, "] matrix");
  // One amax over the whole head (ModelOpt's per-tensor weight_scale_2), then row chunks: the
  // codes and scales depend on the row and amax only, so chunking changes nothing.
  std::vector<float> row(static_cast<size_t>(H));
  float amax = 0.0f;
  for (int64_t r = 0; r < V; ++r) {
    widen_row(t, H, r, H, row.data());
    for (float v : row) {
      FC_CHECK(std::isfinite(v), "--lm-head-dtype nvfp4: ", t.name, " row ", r,
               " holds a non-finite value");
      amax = std::max(amax, std::fabs(v));
    }
  }
  FC_CHECK(amax > 0.0f, "--lm-head-dtype nvfp4: ", t.name, " is all zeros");
  std::vector<uint8_t> codes(static_cast<size_t>(V * H / 2)),
      scales(static_cast<size_t>(V * H / 16));
  constexpr int64_t kChunk = 1024;
  std::vector<float> chunk(static_cast<size_t>(kChunk * H));
  float gs = 0.0f;
  for (int64_t r0 = 0; r0 < V; r0 += kChunk) {
    const int64_t n = std::min(kChunk, V - r0);
    for (int64_t r = 0; r < n; ++r) widen_row(t, H, r0 + r, H, chunk.data() + r * H);
    const quant::Nvfp4Tensor q =
        quant::quantize(chunk.data(), n, H, H, amax, quant::Producer::kModelOpt);
    std::copy(q.packed.begin(), q.packed.end(), codes.begin() + r0 * H / 2);
    std::copy(q.scales.begin(), q.scales.end(), scales.begin() + r0 * H / 16);
    gs = q.global_scale;
  }
  owned.push_back(std::move(codes));
  owned.push_back(std::move(scales));
  Weight w;
  w.data = owned[owned.size() - 2].data();
  w.dtype = DType::kU8;
  w.rows = V;
  w.cols = H;
  w.ld = H / 2;
  w.name = t.name + " (NVFP4 at load time)";
  w.format = WeightFormat::kNvfp4;
  w.block_scale = owned.back().data();
  w.scale_ld = H / 16;
  w.global_scale = gs;
  return backend.upload(w);
}

}  // namespace fc::gemma4
