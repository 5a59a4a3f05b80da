#include "backend/cuda/plan.h"

#include <algorithm>

#include "core/error.h"

namespace fc::cuda {

std::vector<uint8_t> swizzle_block_scales(const uint8_t* scales, int64_t M, int64_t Kb,
                                          int64_t ld) {
  FC_CHECK(M >= 0 && Kb >= 0 && ld >= Kb, "swizzle_block_scales: bad shape [", M, ", ", Kb, "] ld ",
           ld);
  std::vector<uint8_t> out(static_cast<size_t>(swizzled_scale_bytes(M, Kb)), 0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t kb = 0; kb < Kb; ++kb)
      out[static_cast<size_t>(swizzled_scale_offset(m, kb, Kb))] = scales[m * ld + kb];
  return out;
}

std::vector<uint8_t> unswizzle_block_scales(const uint8_t* swizzled, int64_t M, int64_t Kb) {
  std::vector<uint8_t> out(static_cast<size_t>(M * Kb));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t kb = 0; kb < Kb; ++kb)
      out[static_cast<size_t>(m * Kb + kb)] = swizzled[swizzled_scale_offset(m, kb, Kb)];
  return out;
}

int attention_row_splits(int n_seqs, int n_heads, int target_blocks, int max_splits) {
  const int64_t pairs = std::max<int64_t>(1, int64_t{n_seqs} * n_heads);
  const int64_t s = (target_blocks + pairs - 1) / pairs;
  return static_cast<int>(std::clamp<int64_t>(s, 1, max_splits));
}

size_t linear_ws_bytes(int64_t T, int64_t K, bool nvfp4, int dense_bytes_per_elem,
                       bool uses_cublas16, bool nvfp4_prepare, bool fp4_native) {
  const size_t t = static_cast<size_t>(std::max<int64_t>(T, 0));
  const size_t k = static_cast<size_t>(std::max<int64_t>(K, 0));
  size_t b = 0;
  if (!nvfp4) {
    if (uses_cublas16) b += ws_align(t * k * static_cast<size_t>(dense_bytes_per_elem));
    return b;
  }
  if (nvfp4_prepare || fp4_native) b += ws_align(t * k * sizeof(float));
  if (fp4_native) {
    b += ws_align(t * k / 2);  // packed E2M1 activations [T, K/2]
    b += ws_align(static_cast<size_t>(swizzled_scale_bytes(T, K / 16)));
  }
  return b;
}

int64_t nvfp4_dequant_chunk_rows(int64_t N, int64_t K) {
  if (N <= 0 || K <= 0) return 0;
  if (N * K <= kDequantElems) return N;
  const int64_t rows = std::max<int64_t>(128, kDequantElems / K / 128 * 128);
  return std::min(rows, N);
}

size_t nvfp4_dequant_ws_bytes(int64_t T, int64_t N, int64_t K, bool nvfp4_prepare) {
  const size_t t = static_cast<size_t>(std::max<int64_t>(T, 0));
  const size_t k = static_cast<size_t>(std::max<int64_t>(K, 0));
  size_t b = 0;
  if (nvfp4_prepare) b += ws_align(t * k * sizeof(float));
  b += ws_align(t * k * 2);
  b += ws_align(static_cast<size_t>(nvfp4_dequant_chunk_rows(N, K)) * k * 2);
  return b;
}

int attention_key_splits(int n_seqs, int blocks_per_split, int max_keys, int target_blocks) {
  const int64_t per = std::max<int64_t>(1, int64_t{n_seqs} * blocks_per_split);
  const int64_t want = (target_blocks + per - 1) / per;
  const int64_t by_keys = std::max<int64_t>(1, max_keys / kAttnMinKeysPerSplit);
  return static_cast<int>(std::clamp<int64_t>(std::min(want, by_keys), 1, kAttnMaxSplits));
}

size_t attention_split_ws_bytes(int n_seqs, int n_heads, int head_dim, int splits) {
  return ws_align(static_cast<size_t>(std::max(n_seqs, 0)) *
                  static_cast<size_t>(std::max(n_heads, 0)) *
                  static_cast<size_t>(std::max(splits, 0)) * 4 * static_cast<size_t>(head_dim + 2) *
                  sizeof(float));
}

size_t moe_ws_bytes(int64_t T, int k, int64_t H, int64_t I, size_t linear_ws) {
  const size_t t = static_cast<size_t>(std::max<int64_t>(T, 0));
  const size_t h = static_cast<size_t>(H), i = static_cast<size_t>(I);
  const size_t tk = t * static_cast<size_t>(std::max(k, 0));
  return ws_align(t * h * 4) + ws_align(t * 2 * i * 4) + ws_align(t * i * 4) + ws_align(t * h * 4) +
         ws_align(tk * 4) + ws_align(tk * 4) + linear_ws;
}

}  // namespace fc::cuda
