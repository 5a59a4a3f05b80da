#include "backend/cuda/fp4_gemm.h"

#include <cublas_api.h>

#include "core/error.h"

namespace fc::cuda {

#if defined(CUBLAS_VERSION) && CUBLAS_VERSION >= 120800

namespace {

void check(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    fail("cuBLASLt FP4 GEMM: ", what, " failed (status ", static_cast<int>(st), ")");
}

// Destroys the cuBLASLt descriptors of one call on every path out.
struct Descs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~Descs() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

}  // namespace

bool fp4_gemm(cublasLtHandle_t lt, cudaStream_t s, const Fp4GemmArgs& g) {
  // Column-major view: D[N, T] = op(A)·B with A = W stored [K, N] (ld K, transposed: "TN", the
  // only layout FP4 supports) and B = x stored [K, T] (ld K); D = y with ld ldy.
  Descs d;
  check(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc create");
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta),
        "transa");
  check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb),
        "transb");
  const cublasLtMatmulMatrixScale_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3;
  check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode),
        "A scale mode");
  check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode),
        "B scale mode");
  const void* as = g.w_scales;
  const void* bs = g.x_scales;
  check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &as, sizeof as),
        "A scale pointer");
  check(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &bs, sizeof bs),
        "B scale pointer");
  check(cublasLtMatrixLayoutCreate(&d.a, CUDA_R_4F_E2M1, static_cast<uint64_t>(g.K),
                                   static_cast<uint64_t>(g.N), g.K),
        "A layout");
  check(cublasLtMatrixLayoutCreate(&d.b, CUDA_R_4F_E2M1, static_cast<uint64_t>(g.K),
                                   static_cast<uint64_t>(g.T), g.K),
        "B layout");
  check(cublasLtMatrixLayoutCreate(&d.c, CUDA_R_32F, static_cast<uint64_t>(g.N),
                                   static_cast<uint64_t>(g.T), g.ldy),
        "C layout");
  check(cublasLtMatmulPreferenceCreate(&d.pref), "preference");
  const size_t wsb = g.workspace_bytes;
  check(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb,
                                             sizeof wsb),
        "workspace preference");
  cublasLtMatmulHeuristicResult_t res{};
  int found = 0;
  const cublasStatus_t hs =
      cublasLtMatmulAlgoGetHeuristic(lt, d.op, d.a, d.b, d.c, d.c, d.pref, 1, &res, &found);
  if (hs != CUBLAS_STATUS_SUCCESS || found == 0) return false;  // e.g. not a Blackwell GPU
  const float beta = g.accumulate ? 1.0f : 0.0f;
  check(cublasLtMatmul(lt, d.op, &g.alpha, g.w_codes, d.a, g.x_codes, d.b, &beta, g.y, d.c, g.y,
                       d.c, &res.algo, g.workspace, g.workspace_bytes, s),
        "matmul");
  return true;
}

#else

bool fp4_gemm(cublasLtHandle_t, cudaStream_t, const Fp4GemmArgs&) {
  return false;  // cuBLAS older than 12.8: no block-scaled FP4
}

#endif

}  // namespace fc::cuda
