// NVFP4 linear layers as the CPU backend runs them (spec weight-formats §2.3): the activation is
// multiplied by the AWQ pre_quant_scale if the weight has one, optionally put through the W4A4
// activation quantize-dequantize (vLLM's NVFP4 emulation), then multiplied by the NVFP4 weight
// with nvfp4_matmul. `nvfp4_linear_ref` does the same with the scalar pieces.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/matmul.h"
#include "core/thread_pool.h"
#include "quant/nvfp4.h"

namespace fc::cpu {

// The quant::Nvfp4Matrix view of an NVFP4 weight (w.nvfp4() must hold).
quant::Nvfp4Matrix nvfp4_matrix(const Weight& w);

// The activations the matmul of w consumes: x [T, w.cols] (row stride ldx) times
// w.pre_quant_scale (if set), then, if emulate_w4a4 and w.input_scale > 0, quant::activation_qdq
// of each row. Returns x itself (and ld_out = ldx) when neither applies; otherwise the result is
// written to scratch ([T, w.cols], row stride w.cols; resized as needed) and scratch.data() is
// returned. Rows are split over the pool; every element is computed as the scalar ref does.
const float* nvfp4_prepare_activations(ThreadPool& pool, std::vector<float>& scratch,
                                       const float* x, int64_t T, int64_t ldx, const Weight& w,
                                       bool emulate_w4a4, int64_t* ld_out);

// y[T, w.rows] (+)= prepare(x) · Wᵀ with W = the NVFP4 weight w. scratch: caller-owned buffer for
// the prepared activations (holds them on return when pqs / QDQ applied). isa: the kernel family
// for W4A16 (kAuto: nvfp4_matmul's choice); W4A4 emulation always runs nvfp4_fp32_isa().
// prefill_int8: W4A16 steps of at least kPrefillInt8MinRows rows run nvfp4_matmul_i8
// (nvfp4_prefill_i8.h: int8 activations, not exact) instead; decode_int8: likewise the steps of
// fewer rows (decode, small batches, speculative verification, the experts of a MoE step).
// Either only where it is faster: steps of more than nvfp4_int8_max_rows(isa) rows stay exact.
void nvfp4_linear(ThreadPool& pool, std::vector<float>& scratch, const float* x, int64_t T,
                  int64_t ldx, const Weight& w, float* y, int64_t ldy, bool accumulate,
                  bool emulate_w4a4, MatmulIsa isa = MatmulIsa::kAuto, bool prefill_int8 = false,
                  bool decode_int8 = false);

// The row count that splits prefill_int8 from decode_int8 (the same threshold as nvfp4_matmul's
// direct path and nvfp4_matmul_i8's).
inline constexpr int64_t kPrefillInt8MinRows = 33;

// The most rows for which nvfp4_linear honours prefill_int8 / decode_int8: unlimited, except
// with AMX tiles (MatmulIsa::kAmx), whose exact blocked path beats both int8 paths from
// nvfp4_direct_max_rows(isa) + 1 rows on (2 threads, Xeon with AMX: E2B prefill GEMMs 760-950
// GFLOP/s exact against 300-370 int8; the int8 direct tiles ~140 at 4 rows).
int64_t nvfp4_int8_max_rows(MatmulIsa isa);

// Scalar reference of nvfp4_linear: single-threaded preparation, then nvfp4_matmul_ref. If
// prepared is not null it receives the prepared activations [T, w.cols] (always, even when
// nothing applied: then a copy of x).
void nvfp4_linear_ref(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y,
                      int64_t ldy, bool accumulate, bool emulate_w4a4,
                      std::vector<float>* prepared = nullptr);

}  // namespace fc::cpu
