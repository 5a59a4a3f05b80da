// Vectorisable row kernels: the tanh-based ones (the final-logit softcap and the GeGLU
// activation) and the attention inner loops (q·k dots, softmax exponentials, p·v sums), with a
// polynomial exp instead of libm calls so GCC vectorises them; compiled for AVX-512, AVX2 and
// baseline x86-64 and picked at load time (target_clones); the exp-based ones (softcap, GeGLU,
// exp_sub_sum) run AVX2 intrinsics where the CPU has AVX2 + FMA (fast_math_avx2.cpp: GCC leaves
// their loops scalar in every clone). Absolute error of the tanh is below
// 3e-7, relative error of exp_sub_sum's exponentials below 1e-6 (tested against std::tanh /
// std::exp in tests/unit/backend/cpu_ops_test.cpp); the scalar references are ops.h's gelu_tanh,
// std::tanh and attention_ref.
#pragma once

#include <cstdint>

namespace fc::cpu {

// x[i] = c * tanh(x[i] / c)
void softcap_row(float* x, int64_t n, float c);
// out[i] = gelu_tanh(gate[i]) * up[i]   (out may alias gate or up)
void gelu_mul_row(const float* gate, const float* up, float* out, int64_t n);

// Σ q[i]·k[i] over i < n, k in fp32 or bf16 (16 partial sums).
float dot_f32(const float* q, const float* k, int64_t n);
float dot_bf16(const float* q, const uint16_t* k, int64_t n);
// out[d] = Σ_r w[r] · rows[r][d] for d < D: the p·v sum of attention over n cache rows, with
// the output kept in registers across rows (a row-by-row axpy is bound by its stores).
void weighted_rows_f32(const float* w, const float* const* rows, int64_t n, int64_t D, float* out);
void weighted_rows_bf16(const float* w, const uint16_t* const* rows, int64_t n, int64_t D,
                        float* out);
// x[i] = exp(x[i] - m) for x[i] <= m (softmax numerators; -inf gives 0); returns Σ x[i].
float exp_sub_sum(float* x, int64_t n, float m);

}  // namespace fc::cpu
