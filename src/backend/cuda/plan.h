// Host-side pieces of the CUDA backend that need no GPU (built into fc_backend_cuda_host even
// when CUDA is off, and unit-tested on every machine): the swizzled FP4 block-scale layout of
// Blackwell's block-scaled GEMMs (spec weight-formats §4.1), launch-geometry choices, and the
// workspace sizes each op asks for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/cuda/device_math.h"

namespace fc::cuda {

constexpr int64_t round_up(int64_t x, int64_t m) {
  return (x + m - 1) / m * m;
}

// ---- Swizzled block scales (cuBLASLt VEC16_UE4M3 / CUTLASS "128x4" layout). ----
// Scale (m, kb) of an [M, Kb] scale matrix (Kb = K/16 blocks per row) lives at byte
//   ((m/128)·(Kp/4) + kb/4)·512 + (m%32)·16 + ((m%128)/32)·4 + kb%4,   Kp = round_up(Kb, 4)
// i.e. 128-row × 4-column tiles of 512 bytes; rows padded to 128, columns to 4, padding bytes 0.
FC_HD int64_t swizzled_scale_offset(int64_t m, int64_t kb, int64_t Kb) {
  const int64_t kp4 = (Kb + 3) / 4;
  return ((m / 128) * kp4 + kb / 4) * 512 + (m % 32) * 16 + ((m % 128) / 32) * 4 + kb % 4;
}
// Bytes of the swizzled (padded) scale tensor of an [M, Kb] scale matrix.
constexpr int64_t swizzled_scale_bytes(int64_t M, int64_t Kb) {
  return round_up(M, 128) * round_up(Kb, 4);
}
// Row-major scales [M, Kb] (row stride ld bytes) to the swizzled layout (zero padding).
std::vector<uint8_t> swizzle_block_scales(const uint8_t* scales, int64_t M, int64_t Kb, int64_t ld);
// The inverse: swizzled bytes back to a row-major [M, Kb] matrix (padding dropped).
std::vector<uint8_t> unswizzle_block_scales(const uint8_t* swizzled, int64_t M, int64_t Kb);

// Whether a weight [N, K] may run through the native FP4 cuBLASLt GEMM: packed rows must be
// 16-byte multiples (K % 32 == 0) and N a multiple of 32 (cuBLASLt's FP4 leading-dim rules).
constexpr bool fp4_native_shape_ok(int64_t N, int64_t K) {
  return N > 0 && K > 0 && K % 32 == 0 && N % 32 == 0;
}

// ---- Launch geometry. ----
// Linear kernels on the SIMT path: one warp per output column n, kWarpsPerBlock warps per block,
// kTokensPerTile token rows per block (accumulators in registers).
constexpr int kLinWarps = 4;
constexpr int kLinTokens = 8;
struct Grid2 {
  int64_t x = 1, y = 1;
};
constexpr Grid2 linear_grid(int64_t T, int64_t N) {
  return Grid2{(N + kLinWarps - 1) / kLinWarps, (T + kLinTokens - 1) / kLinTokens};
}

// Attention launches (n_seqs, n_heads, splits) blocks; block z handles the query rows
// i = z, z + splits, ... of its sequence. The row count per sequence lives on the device, so the
// host picks splits from the block count alone: enough blocks to fill the GPU (~target) when few
// (sequence, head) pairs exist (a long prefill), 1 when there are many (batched decode).
int attention_row_splits(int n_seqs, int n_heads, int target_blocks = 2048, int max_splits = 64);
constexpr int kAttnThreads = 128;  // 4 warps; each warp walks every 4th key
constexpr int kAttnMaxHeadDim = 512;

// ---- Workspace (bytes, each piece 256-byte aligned). ----
constexpr size_t ws_align(size_t b) {
  return (b + 255) / 256 * 256;
}
// What one linear of T rows over a weight needs: the activation copy converted to the weight's
// 16-bit dtype for cuBLAS (dense BF16/F16, T above the SIMT limit), the prepared activations of an
// NVFP4 weight (pre_quant_scale / W4A4 emulation), or the FP4-quantized activations and their
// swizzled scales for the native Blackwell path.
size_t linear_ws_bytes(int64_t T, int64_t K, bool nvfp4, int dense_bytes_per_elem,
                       bool uses_cublas16, bool nvfp4_prepare, bool fp4_native);
// NVFP4 linears of many rows (prefill) run as BF16 tensor-core GEMMs: the weight is dequantized
// to BF16 (codes x block scales, exact) in chunks of rows, each chunk one cuBLAS call with the
// per-tensor scale as alpha. Rows per chunk: the whole weight when it has at most kDequantElems
// elements, else a multiple of 128 rows holding about that many (bounded workspace).
constexpr int64_t kDequantElems = int64_t{16} << 20;
int64_t nvfp4_dequant_chunk_rows(int64_t N, int64_t K);
// Workspace of that path: prepared fp32 activations (pre_quant_scale / none), the BF16
// activations [T, K] and one BF16 weight chunk [rows, K].
size_t nvfp4_dequant_ws_bytes(int64_t T, int64_t N, int64_t K, bool nvfp4_prepare);

// Decode attention (one query per sequence) splits each sequence's keys over several blocks
// (flash-decoding): block (s, kv head x head chunk, split) walks keys of one split for up to
// kAttnSplitHeads query heads of one GQA group, each of its 4 warps keeping its own partial
// softmax state; a second kernel merges the partials. attention_key_splits picks the splits so
// that all blocks together fill the GPU (~target) with at least kAttnMinKeysPerSplit keys each.
constexpr int kAttnSplitHeads = 4;
constexpr int kAttnMinKeysPerSplit = 128;
constexpr int kAttnMaxSplits = 64;
int attention_key_splits(int n_seqs, int blocks_per_split, int max_keys, int target_blocks = 512);
// Partials workspace: [n_seqs, n_heads, splits * 4 warps] states of (head_dim + 2) floats.
size_t attention_split_ws_bytes(int n_seqs, int n_heads, int head_dim, int splits);

// moe_experts: per expert at most T rows: gathered x [T, H], gate|up [T, 2I], act [T, I],
// y [T, H], row ids + weights [T·k], plus one linear's workspace.
size_t moe_ws_bytes(int64_t T, int k, int64_t H, int64_t I, size_t linear_ws);

}  // namespace fc::cuda
