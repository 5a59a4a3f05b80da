// NVFP4 primitives: E2M1 4-bit codes, FP8 E4M3 scales, and the quantize / dequantize maths of
// ../shared/spec/weight-formats-and-speculation.md §1-§3. Scalar and obvious: the reference
// every SIMD kernel is tested against, and what the quantizer uses.
#pragma once

#include <cstdint>
#include <vector>

namespace fc::quant {

// E2M1 value of code 0..15 (bit 3 = sign): {0, .5, 1, 1.5, 2, 3, 4, 6} and their negatives.
extern const float kE2M1[16];

inline float e2m1_to_float(uint8_t code) {
  return kE2M1[code & 0xF];
}
// Round to nearest, ties to the even code, saturating at ±6 (spec §1.1 threshold table); -0 and
// negative values below 0.25 in magnitude give code 8. NaN gives 0.
uint8_t float_to_e2m1(float x);

// FP8 E4M3 ("e4m3fn"): 0x7F / 0xFF are NaN, max 448, subnormals m·2⁻⁹.
float e4m3_to_float(uint8_t b);
// Round to nearest even, saturating to ±448 (as vLLM / compressed-tensors clamp before the cast).
// NaN gives 0x7F.
uint8_t float_to_e4m3(float x);
// The 256 decoded values, for table lookups in kernels.
const float* e4m3_table();

// An NVFP4 matrix W[rows, cols] as stored on disk: packed codes (row r at packed + r*ld bytes,
// element 2j in the low nibble of byte j), FP8 block scales [rows, cols/16] (row stride
// scale_ld bytes), and the per-tensor multiplier (ModelOpt weight_scale_2 = 1/CT global scale).
// W[n, k] = e2m1(code[n, k]) · e4m3(scale[n, k/16]) · global_scale.
struct Nvfp4Matrix {
  const uint8_t* packed = nullptr;
  const uint8_t* scales = nullptr;
  int64_t rows = 0, cols = 0;  // cols % 16 == 0
  int64_t ld = 0;              // bytes between packed rows (>= cols/2)
  int64_t scale_ld = 0;        // bytes between scale rows (>= cols/16)
  float global_scale = 1.0f;
};

// dst[0, cols) = row `r` of W, dequantized to fp32 (exact: every product is representable).
void dequantize_row(const Nvfp4Matrix& w, int64_t r, float* dst);

// Which producer's scale arithmetic to reproduce when quantizing (spec §2.3 vs §3.1). They give
// the same codes and block scales except in rare fp32 rounding cases; kept apart so exports match
// each producer bit for bit.
enum class Producer { kModelOpt, kCompressedTensors };

// A quantized weight as written to a checkpoint.
struct Nvfp4Tensor {
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> packed;  // [rows, cols/2]
  std::vector<uint8_t> scales;  // [rows, cols/16]
  float global_scale = 1.0f;    // multiplier: ModelOpt weight_scale_2 = amax/(6·448)
  float stored_scale = 1.0f;    // as the producer writes it: ModelOpt S2, CT weight_global_scale
};

// compressed-tensors' global scale for an amax (weights and activations alike): torch evaluates
// `2688.0 / amax` as reciprocal(amax) · 2688 (compressed_tensors generate_gparam).
inline float ct_global_scale(float amax) {
  return (1.0f / amax) * 2688.0f;
}

// Quantizes W[rows, cols] (row stride ld floats) with the per-tensor amax `amax` (the maximum |W|
// over the fused group it belongs to, or over W itself; must be > 0 and finite; clip searches pass
// a smaller value, in which case codes saturate at ±6 and block scales at 448):
//   ModelOpt: S2 = amax/2688, s_b = e4m3(clamp(amax_b/(6·S2), 2⁻⁹, 448)) (all-zero block: 1.0),
//             q = e2m1(W/(s_b·S2)), -0.0 coded 0;
//   CT:       gs = (1/amax)·2688, s_b = e4m3(clamp(gs·amax_b/6, -448, 448)) (exactly 0 → 0.125),
//             q = e2m1(W/(s_b/gs)), global_scale = 1/gs.
// Each in the producer's fp32 operation order (checked byte for byte against both producers'
// exports of the same weights: tools/refgen/quant).
Nvfp4Tensor quantize(const float* w, int64_t rows, int64_t cols, int64_t ld, float amax,
                     Producer producer);

// max |w| over a [rows, cols] matrix (row stride ld).
float abs_max(const float* w, int64_t rows, int64_t cols, int64_t ld);

// W4A4 activation quantize-dequantize (spec §2.3, vLLM ref_nvfp4_quant) of one row of n values
// (n % 16 == 0), in place allowed: with gA = 1/input_scale, per 16-block
// sa = e4m3(clamp(gA·amax_b/6, ±448)), q = e2m1(clamp(x·gA/sa, ±6)) (0 if sa == 0),
// out = q·sa/gA.
void activation_qdq(const float* x, int64_t n, float input_scale, float* out);

}  // namespace fc::quant
