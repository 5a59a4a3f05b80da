// Internal: the AVX2 parts of fast_math.cpp's kernels (fast_math_avx2.cpp). Each handles a
// prefix of the row and returns its length; the caller finishes the rest with the scalar code.
#pragma once

#include <cstdint>

namespace fc::cpu::detail {

bool fast_math_avx2();  // AVX2 + FMA present (only then may the functions below be called)
int64_t softcap_row_avx2(float* x, int64_t n, float c);
int64_t gelu_mul_row_avx2(const float* gate, const float* up, float* out, int64_t n);
// Also stores its 16 partial sums (lanes of the scalar code's acc[16]) into acc16.
int64_t exp_sub_sum_avx2(float* x, int64_t n, float m, float* acc16);

}  // namespace fc::cpu::detail
