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

// The checkpoint tensor the dense head `head` was bound from, checked to be a plain [V, H]
// F32/BF16/F16 matrix (what the re-quantizers read row by row).
const TensorInfo& dense_head(const Weight& head, const Checkpoint& ckpt, const char* to) {
  const TensorInfo& t = ckpt.get(head.name);
  FC_CHECK(t.dtype == DType::kF32 || t.dtype == DType::kBF16 || t.dtype == DType::kF16,
           "--lm-head-dtype ", to, ": tensor ", t.name, " has dtype ", dtype_name(t.dtype),
           ", expected F32, BF16 or F16");
  FC_CHECK(head.ld == head.cols && static_cast<int64_t>(t.numel) == head.rows * head.cols,
           "--lm-head-dtype ", to, ": ", t.name, " is not a plain [", head.rows, ", ", head.cols,
           "] matrix");
  return t;
}

}  // namespace

LmHeadDType parse_lm_head_dtype(const std::string& s) {
  if (s == "checkpoint" || s == "auto") return LmHeadDType::kCheckpoint;
  if (s == "bf16" || s == "bfloat16") return LmHeadDType::kBf16;
  if (s == "nvfp4") return LmHeadDType::kNvfp4;
  fail("--lm-head-dtype: '", s, "' is not one of checkpoint, bf16, nvfp4");
}

const char* lm_head_dtype_name(LmHeadDType d) {
  return d == LmHeadDType::kNvfp4 ? "nvfp4" : d == LmHeadDType::kBf16 ? "bf16" : "checkpoint";
}

Weight make_lm_head(LmHeadDType d, const Weight& head, const Checkpoint& ckpt, Backend& backend,
                    std::vector<std::vector<uint8_t>>& owned) {
  switch (d) {
    case LmHeadDType::kBf16:
      return bf16_lm_head(head, ckpt, backend, owned);
    case LmHeadDType::kNvfp4:
      return nvfp4_lm_head(head, ckpt, backend, owned);
    default:
      return head;
  }
}

Weight bf16_lm_head(const Weight& head, const Checkpoint& ckpt, Backend& backend,
                    std::vector<std::vector<uint8_t>>& owned) {
  if (head.nvfp4() || head.dtype == DType::kBF16) return head;
  const TensorInfo& t = dense_head(head, ckpt, "bf16");
  const int64_t V = head.rows, H = head.cols;
  std::vector<uint8_t> bytes(static_cast<size_t>(V * H * 2));
  std::vector<float> row(static_cast<size_t>(H));
  for (int64_t r = 0; r < V; ++r) {
    widen_row(t, H, r, H, row.data());
    for (int64_t k = 0; k < H; ++k) {
      const uint16_t b = f32_to_bf16(row[static_cast<size_t>(k)]);
      std::memcpy(bytes.data() + 2 * (r * H + k), &b, 2);
    }
  }
  owned.push_back(std::move(bytes));
  Weight w = head;
  w.data = owned.back().data();
  w.dtype = DType::kBF16;
  w.ld = H;
  w.name = t.name + " (BF16 at load time)";
  return backend.upload(w);
}

Weight nvfp4_lm_head(const Weight& head, const Checkpoint& ckpt, Backend& backend,
                     std::vector<std::vector<uint8_t>>& owned) {
  if (head.nvfp4()) return head;
  const TensorInfo& t = dense_head(head, ckpt, "nvfp4");
  const int64_t V = head.rows, H = head.cols;
  FC_CHECK(H % 16 == 0, "--lm-head-dtype nvfp4: ", t.name, " has ", H,
           " columns, not a multiple of 16");
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
