#include "backend/cpu/nvfp4_linear.h"

#include <algorithm>
#include <cstdint>

#include "backend/cpu/nvfp4_matmul.h"
#include "backend/cpu/nvfp4_prefill_i8.h"
#include "backend/cpu/nvfp4_prefill_i8_kernels.h"
#include "core/error.h"
#include "core/half.h"

namespace fc::cpu {
namespace {

float pqs_at(const Weight& w, int64_t k) {
  switch (w.pqs_dtype) {
    case DType::kF32:
      return static_cast<const float*>(w.pre_quant_scale)[k];
    case DType::kBF16:
      return bf16_to_f32(static_cast<const uint16_t*>(w.pre_quant_scale)[k]);
    case DType::kF16:
      return f16_to_f32(static_cast<const uint16_t*>(w.pre_quant_scale)[k]);
    default:
      fail("weight ", w.name, ": pre_quant_scale dtype ", dtype_name(w.pqs_dtype),
           " is not supported (F32, BF16 or F16)");
  }
}

void check_weight(const Weight& w) {
  FC_CHECK(w.nvfp4(), "nvfp4_linear: weight ", w.name, " is not NVFP4");
  FC_CHECK(w.cols % 16 == 0, "nvfp4_linear: weight ", w.name, " has ", w.cols,
           " columns, not a multiple of 16");
  if (w.pre_quant_scale) (void)pqs_at(w, 0);  // dtype check
}

bool needs_prepare(const Weight& w, bool emulate_w4a4) {
  return w.pre_quant_scale != nullptr || (emulate_w4a4 && w.input_scale > 0.0f);
}

// One row: out[k] = x[k] · pqs[k] (fp32 product), then the activation QDQ in place.
void prepare_row(const float* x, const Weight& w, bool emulate_w4a4, float* out) {
  if (w.pre_quant_scale) {
    for (int64_t k = 0; k < w.cols; ++k) out[k] = x[k] * pqs_at(w, k);
  } else {
    std::copy(x, x + w.cols, out);
  }
  if (emulate_w4a4 && w.input_scale > 0.0f) quant::activation_qdq(out, w.cols, w.input_scale, out);
}

}  // namespace

quant::Nvfp4Matrix nvfp4_matrix(const Weight& w) {
  FC_CHECK(w.nvfp4(), "weight ", w.name, " is not NVFP4");
  quant::Nvfp4Matrix m;
  m.packed = static_cast<const uint8_t*>(w.data);
  m.scales = w.block_scale;
  m.rows = w.rows;
  m.cols = w.cols;
  m.ld = w.ld;
  m.scale_ld = w.scale_ld;
  m.global_scale = w.global_scale;
  return m;
}

const float* nvfp4_prepare_activations(ThreadPool& pool, std::vector<float>& scratch,
                                       const float* x, int64_t T, int64_t ldx, const Weight& w,
                                       bool emulate_w4a4, int64_t* ld_out) {
  check_weight(w);
  if (!needs_prepare(w, emulate_w4a4)) {
    *ld_out = ldx;
    return x;
  }
  const int64_t K = w.cols;
  if (scratch.size() < static_cast<size_t>(T * K)) scratch.resize(static_cast<size_t>(T * K));
  float* out = scratch.data();
  // ~4K elements per chunk: the QDQ costs a few ns per element, a wake-up a few µs.
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, K));
  pool.parallel_for(T, grain, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) prepare_row(x + t * ldx, w, emulate_w4a4, out + t * K);
  });
  *ld_out = K;
  return out;
}

// One split for both: nvfp4_matmul_i8's direct tiles serve exactly the decode_int8 steps.
static_assert(kPrefillInt8MinRows == detail::kI8DirectMaxT + 1);

int64_t nvfp4_int8_max_rows(MatmulIsa isa) {
  const int64_t direct = nvfp4_direct_max_rows(isa);
  return direct < detail::kI8DirectMaxT ? direct : INT64_MAX;
}

void nvfp4_linear(ThreadPool& pool, std::vector<float>& scratch, const float* x, int64_t T,
                  int64_t ldx, const Weight& w, float* y, int64_t ldy, bool accumulate,
                  bool emulate_w4a4, MatmulIsa isa, bool prefill_int8, bool decode_int8) {
  int64_t ld = ldx;
  const float* xp = nvfp4_prepare_activations(pool, scratch, x, T, ldx, w, emulate_w4a4, &ld);
  if (emulate_w4a4 && w.input_scale > 0.0f) {
    nvfp4_matmul_with_isa(nvfp4_fp32_isa(), pool, xp, T, ld, nvfp4_matrix(w), y, ldy, accumulate);
  } else if ((T >= kPrefillInt8MinRows ? prefill_int8 : decode_int8) &&
             T <= nvfp4_int8_max_rows(isa)) {
    nvfp4_matmul_i8(pool, xp, T, ld, nvfp4_matrix(w), y, ldy, accumulate);
  } else {
    nvfp4_matmul_with_isa(isa, pool, xp, T, ld, nvfp4_matrix(w), y, ldy, accumulate);
  }
}

void nvfp4_linear_ref(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y,
                      int64_t ldy, bool accumulate, bool emulate_w4a4,
                      std::vector<float>* prepared) {
  check_weight(w);
  const int64_t K = w.cols;
  std::vector<float> xs(static_cast<size_t>(T * K));
  for (int64_t t = 0; t < T; ++t) prepare_row(x + t * ldx, w, emulate_w4a4, xs.data() + t * K);
  nvfp4_matmul_ref(xs.data(), T, K, nvfp4_matrix(w), y, ldy, accumulate);
  if (prepared) *prepared = std::move(xs);
}

}  // namespace fc::cpu
