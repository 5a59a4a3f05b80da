// CudaBackend: device memory, uploads, dispatch of each op to its kernel (kernels.h), cuBLAS for
// large dense linears, and the native FP4 path (fp4_gemm.h). Host code only (no kernels here).
#include "backend/cuda/cuda_backend.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <unordered_map>
#include <vector>

#include "backend/cuda/fp4_gemm.h"
#include "backend/cuda/host_checks.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/plan.h"
#include "core/error.h"

namespace fc::cuda {
namespace {

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("CUDA backend: ", what, ": ", cudaGetErrorString(e));
}
void ckb(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    fail("CUDA backend: cuBLAS ", what, " failed (status ", static_cast<int>(st), ")");
}
WDType dense_wdt(const Weight& w) {
  const WDType t = wdt_of(w.dtype, "weight " + w.name);
  FC_CHECK(t != WDType::kFP8, "CUDA backend: weight ", w.name, ": FP8 dense weights unsupported");
  return t;
}

constexpr size_t kBlasWorkspace = 32ull << 20;  // cuBLAS(Lt) scratch (Hopper recommendation)

// Caching-allocator size classes: 512 B granules below 1 MiB, 2 MiB above.
size_t size_class(size_t b) {
  b = std::max<size_t>(b, 1);
  return b < (1u << 20) ? (b + 511) / 512 * 512 : (b + (2u << 20) - 1) / (2u << 20) * (2u << 20);
}

}  // namespace

int device_count() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}
std::string device_error() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) return cudaGetErrorString(e);
  return n == 0 ? "no CUDA device found" : "";
}

struct CudaBackend::Impl {
  int device = 0;
  cudaDeviceProp prop{};
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* blas_ws = nullptr;
  char* ws = nullptr;  // op scratch (workspace API, cuda_backend.h)
  size_t ws_bytes = 0;
  int* err_host = nullptr;  // mapped pinned flag: embed saw a bad token id
  int* err_dev = nullptr;
  std::multimap<size_t, void*> cached;     // freed blocks by size class
  std::unordered_map<void*, size_t> live;  // alloc()'ed blocks and their size class
  std::vector<void*> owned;                // upload() copies, freed with the backend
  std::unordered_map<const void*, const uint8_t*> fp4_scales;  // codes -> swizzled scales
  // CUDA graphs: instantiated recordings by id, and the workspace generation each was recorded
  // against (a recording that used the old workspace is stale once it grows).
  struct Graph {
    cudaGraphExec_t exec = nullptr;
    uint64_t ws_gen = 0;
  };
  std::unordered_map<int64_t, Graph> graphs;
  int64_t next_graph = 1;
  uint64_t ws_gen = 0;
  bool capturing = false;

  char* workspace(size_t need) {
    if (need > ws_bytes) {
      if (capturing)
        fail("CUDA backend: the workspace must grow to ", need,
             " bytes while recording a graph "
             "(reserve_workspace() before capturing)");
      ++ws_gen;
      ck(cudaStreamSynchronize(stream), "workspace grow (sync)");
      if (ws) ck(cudaFree(ws), "workspace free");
      ws = nullptr;
      const size_t b = std::max(need, ws_bytes * 2);
      ck(cudaMalloc(reinterpret_cast<void**>(&ws), b), "workspace cudaMalloc");
      ws_bytes = b;
    }
    return ws;
  }
  void* raw_alloc(size_t bytes) {
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {  // give the cache back and try once more
      cudaGetLastError();
      release_cache();
      e = cudaMalloc(&p, bytes);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      fail("CUDA backend: out of device memory allocating ", bytes, " bytes (",
           cudaGetErrorString(e), ")");
    }
    return p;
  }
  void release_cache() {
    cudaStreamSynchronize(stream);
    for (auto& [sz, p] : cached) cudaFree(p);
    cached.clear();
  }
};

CudaBackend::CudaBackend(CudaOptions opts) : impl_(std::make_unique<Impl>()), opts_(opts) {
  const int n = device_count();
  if (n == 0)
    fail("CUDA backend: no usable GPU (", device_error(),
         "); run on a machine with an NVIDIA GPU and driver, or use --device cpu");
  FC_CHECK(opts.device >= 0 && opts.device < n, "CUDA backend: device ", opts.device,
           " does not exist (", n, " visible)");
  Impl& m = *impl_;
  m.device = opts.device;
  ck(cudaSetDevice(m.device), "cudaSetDevice");
  ck(cudaGetDeviceProperties(&m.prop, m.device), "cudaGetDeviceProperties");
  ck(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking), "stream create");
  ckb(cublasCreate(&m.blas), "create");
  ckb(cublasSetStream(m.blas, m.stream), "set stream");
  ckb(cublasSetMathMode(m.blas, CUBLAS_DEFAULT_MATH), "math mode");  // no TF32
  ck(cudaMalloc(&m.blas_ws, kBlasWorkspace), "cuBLAS workspace");
  ckb(cublasSetWorkspace(m.blas, m.blas_ws, kBlasWorkspace), "set workspace");
  ckb(cublasLtCreate(&m.lt), "Lt create");
  ck(cudaHostAlloc(reinterpret_cast<void**>(&m.err_host), sizeof(int), cudaHostAllocMapped),
     "error flag");
  *m.err_host = 0;
  ck(cudaHostGetDevicePointer(reinterpret_cast<void**>(&m.err_dev), m.err_host, 0), "flag ptr");
  if (opts.workspace_bytes > 0) m.workspace(opts.workspace_bytes);
}

CudaBackend::~CudaBackend() {
  Impl& m = *impl_;
  if (m.stream) cudaStreamSynchronize(m.stream);
  for (auto& [id, g] : m.graphs) cudaGraphExecDestroy(g.exec);
  m.release_cache();
  for (auto& [p, sz] : m.live) cudaFree(p);
  for (void* p : m.owned) cudaFree(p);
  if (m.ws) cudaFree(m.ws);
  if (m.blas_ws) cudaFree(m.blas_ws);
  if (m.err_host) cudaFreeHost(m.err_host);
  if (m.lt) cublasLtDestroy(m.lt);
  if (m.blas) cublasDestroy(m.blas);
  if (m.stream) cudaStreamDestroy(m.stream);
}

std::string CudaBackend::device_description() const {
  const cudaDeviceProp& p = impl_->prop;
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs, " + std::to_string(p.totalGlobalMem >> 30) +
         " GiB)";
}
void* CudaBackend::stream() const {
  return impl_->stream;
}
void CudaBackend::synchronize() {
  ck(cudaStreamSynchronize(impl_->stream), "synchronize");
}
void CudaBackend::reserve_workspace(size_t bytes) {
  impl_->workspace(bytes);
}
void CudaBackend::zero(void* dst, size_t bytes) {
  if (bytes > 0) ck(cudaMemsetAsync(dst, 0, bytes, impl_->stream), "memset");
}
char* CudaBackend::scratch(size_t need) {
  return impl_->workspace(need);
}
int* CudaBackend::embed_error_flag() {
  return impl_->err_dev;
}

// ---- CUDA graphs. ----

void CudaBackend::begin_capture() {
  Impl& m = *impl_;
  FC_CHECK(!m.capturing, "CUDA backend: begin_capture while already capturing");
  // Thread-local mode: other threads' CUDA calls (e.g. a drafter's) are not affected.
  ck(cudaStreamBeginCapture(m.stream, cudaStreamCaptureModeThreadLocal), "begin capture");
  m.capturing = true;
}

int64_t CudaBackend::end_capture() {
  Impl& m = *impl_;
  FC_CHECK(m.capturing, "CUDA backend: end_capture without begin_capture");
  m.capturing = false;
  cudaGraph_t graph = nullptr;
  ck(cudaStreamEndCapture(m.stream, &graph), "end capture");
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  ck(e, "graph instantiate");
  const int64_t id = m.next_graph++;
  m.graphs[id] = Impl::Graph{exec, m.ws_gen};
  return id;
}

bool CudaBackend::replay(int64_t id) {
  Impl& m = *impl_;
  auto it = m.graphs.find(id);
  FC_CHECK(it != m.graphs.end(), "CUDA backend: replay of unknown graph ", id);
  if (it->second.ws_gen != m.ws_gen) return false;
  ck(cudaGraphLaunch(it->second.exec, m.stream), "graph launch");
  return true;
}

void CudaBackend::drop_graph(int64_t id) {
  Impl& m = *impl_;
  auto it = m.graphs.find(id);
  if (it == m.graphs.end()) return;
  ck(cudaStreamSynchronize(m.stream), "drop graph (sync)");
  cudaGraphExecDestroy(it->second.exec);
  m.graphs.erase(it);
}

// ---- Memory. ----

std::optional<DeviceMemory> CudaBackend::memory() const {
  size_t free_b = 0, total_b = 0;
  ck(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  DeviceMemory m;
  m.free = static_cast<int64_t>(free_b);
  m.total = static_cast<int64_t>(total_b);
  for (const auto& [size_class, p] : impl_->cached) m.free += static_cast<int64_t>(size_class);
  return m;
}

void* CudaBackend::alloc(size_t bytes) {
  Impl& m = *impl_;
  FC_CHECK(!m.capturing, "CUDA backend: alloc of ", bytes, " bytes while recording a graph");
  const size_t sc = size_class(bytes);
  void* p = nullptr;
  if (auto it = m.cached.find(sc); it != m.cached.end()) {
    p = it->second;
    m.cached.erase(it);
  } else {
    p = m.raw_alloc(sc);
  }
  m.live[p] = sc;
  return p;
}
void CudaBackend::free(void* p) {
  if (!p) return;
  Impl& m = *impl_;
  auto it = m.live.find(p);
  FC_CHECK(it != m.live.end(), "CUDA backend: free of a pointer alloc() did not return");
  m.cached.emplace(it->second, p);  // reuse is stream-ordered: every op runs on one stream
  m.live.erase(it);
}
void CudaBackend::to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  // Pageable sources are staged before cudaMemcpyAsync returns; pinned ones are read later, so
  // wait for those (the caller may reuse src at once).
  ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, impl_->stream), "to_device");
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, src) == cudaSuccess && attr.type == cudaMemoryTypeHost)
    synchronize();
  cudaGetLastError();
}
void CudaBackend::to_host(void* dst, const void* src, size_t bytes) {
  if (bytes > 0)
    ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, impl_->stream), "to_host");
  synchronize();
  if (*impl_->err_host) {
    *impl_->err_host = 0;
    fail("CUDA backend: embed was given a token id outside the embedding table");
  }
}
void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, impl_->stream), "copy");
}

Weight CudaBackend::upload(const Weight& host) {
  if (host.empty()) return host;
  Impl& m = *impl_;
  Weight w = host;
  // Copies a [rows, row_bytes] matrix with a source stride into a compact device buffer.
  auto put = [&](const void* src, int64_t rows, size_t row_bytes, size_t src_stride) {
    void* d = m.raw_alloc(std::max<size_t>(1, static_cast<size_t>(rows) * row_bytes));
    m.owned.push_back(d);
    ck(cudaMemcpy2DAsync(d, row_bytes, src, src_stride, row_bytes, static_cast<size_t>(rows),
                         cudaMemcpyHostToDevice, m.stream),
       "upload");
    return d;
  };
  if (host.nvfp4()) {
    FC_CHECK(host.cols % 16 == 0, "CUDA backend: NVFP4 weight ", host.name, " has ", host.cols,
             " columns, not a multiple of 16");
    w.data =
        put(host.data, host.rows, static_cast<size_t>(host.cols / 2), static_cast<size_t>(host.ld));
    w.ld = host.cols / 2;
    w.block_scale = static_cast<const uint8_t*>(put(host.block_scale, host.rows,
                                                    static_cast<size_t>(host.cols / 16),
                                                    static_cast<size_t>(host.scale_ld)));
    w.scale_ld = host.cols / 16;
    if (host.pre_quant_scale) {
      (void)wdt_of(host.pqs_dtype, "pre_quant_scale of " + host.name);
      const size_t b = static_cast<size_t>(host.cols * dtype_bits(host.pqs_dtype) / 8);
      w.pre_quant_scale = put(host.pre_quant_scale, 1, b, b);
    }
    if (opts_.native_fp4 && m.prop.major >= 10 && host.input_scale > 0.0f &&
        fp4_native_shape_ok(host.rows, host.cols)) {
      const std::vector<uint8_t> sw =
          swizzle_block_scales(host.block_scale, host.rows, host.cols / 16, host.scale_ld);
      m.fp4_scales[w.data] = static_cast<const uint8_t*>(put(sw.data(), 1, sw.size(), sw.size()));
    }
  } else {
    const size_t esz = static_cast<size_t>(dtype_bits(host.dtype) / 8);
    FC_CHECK(esz > 0, "CUDA backend: weight ", host.name, " has sub-byte dtype ",
             dtype_name(host.dtype));
    w.data = put(host.data, host.rows, static_cast<size_t>(host.cols) * esz,
                 static_cast<size_t>(host.ld) * esz);
    w.ld = host.cols;
  }
  synchronize();  // the host source (an mmap) may go away after upload returns
  return w;
}

// ---- Linear. ----

bool CudaBackend::nvfp4_dequant_path(int64_t T, const Weight& w) const {
  return opts_.nvfp4_dequant_min_rows > 0 && T >= opts_.nvfp4_dequant_min_rows &&
         !opts_.exact_linear && !(opts_.emulate_w4a4 && w.input_scale > 0.0f);
}

size_t CudaBackend::linear_ws_need(int64_t T, const Weight& w) const {
  if (w.nvfp4()) {
    const bool native = impl_->fp4_scales.count(w.data) > 0;
    const bool prep = w.pre_quant_scale || (opts_.emulate_w4a4 && w.input_scale > 0.0f);
    size_t b = linear_ws_bytes(T, w.cols, true, 0, false, prep, native);
    if (nvfp4_dequant_path(T, w))
      b = std::max(b, nvfp4_dequant_ws_bytes(T, w.rows, w.cols, w.pre_quant_scale != nullptr));
    return b;
  }
  const bool blas16 = !opts_.exact_linear && T > opts_.simt_max_rows && w.dtype != DType::kF32;
  return linear_ws_bytes(T, w.cols, false, dtype_bits(w.dtype) / 8, blas16, false, false);
}

void CudaBackend::linear(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y,
                         int64_t ldy, bool accumulate) {
  linear_ws(x, T, ldx, w, y, ldy, accumulate, scratch(linear_ws_need(T, w)));
}

void CudaBackend::linear_ws(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y,
                            int64_t ldy, bool accumulate, char* ws) {
  if (T <= 0 || w.rows <= 0) return;
  Impl& m = *impl_;
  const int64_t N = w.rows, K = w.cols;
  if (w.nvfp4()) {
    FC_CHECK(K % 16 == 0, "CUDA backend: NVFP4 weight ", w.name, " K=", K, " not a multiple of 16");
    const WDType pdt =
        w.pre_quant_scale ? wdt_of(w.pqs_dtype, "pre_quant_scale of " + w.name) : WDType::kF32;
    const float* xp = x;
    int64_t ldp = ldx;
    char* rest = ws;
    auto it = m.fp4_scales.find(w.data);
    if (it != m.fp4_scales.end()) {  // Blackwell W4A4 (untested on hardware)
      if (w.pre_quant_scale) {
        launch_nvfp4_prepare(x, T, K, ldx, w.pre_quant_scale, pdt, 0.0f,
                             reinterpret_cast<float*>(rest), m.stream);
        xp = reinterpret_cast<const float*>(rest);
        ldp = K;
      }
      rest += ws_align(static_cast<size_t>(T * K) * 4);
      uint8_t* codes = reinterpret_cast<uint8_t*>(rest);
      uint8_t* scales = codes + ws_align(static_cast<size_t>(T * K / 2));
      launch_fp4_quantize(xp, T, K, ldp, w.input_scale, codes, scales, m.stream);
      ck_launch("fp4_quantize");
      Fp4GemmArgs a{static_cast<const uint8_t*>(w.data),
                    it->second,
                    codes,
                    scales,
                    N,
                    K,
                    T,
                    w.global_scale * w.input_scale,
                    y,
                    ldy,
                    accumulate,
                    m.blas_ws,
                    kBlasWorkspace};
      if (fp4_gemm(m.lt, m.stream, a)) return;
      xp = x;  // no algorithm: W4A16 below (with the prepared activations recomputed)
      ldp = ldx;
    }
    if (nvfp4_dequant_path(T, w)) {
      linear_nvfp4_dequant(x, T, ldx, w, y, ldy, accumulate, ws);
      return;
    }
    const bool qdq = opts_.emulate_w4a4 && w.input_scale > 0.0f;
    if (w.pre_quant_scale || qdq) {
      launch_nvfp4_prepare(x, T, K, ldx, w.pre_quant_scale, pdt, qdq ? w.input_scale : 0.0f,
                           reinterpret_cast<float*>(ws), m.stream);
      xp = reinterpret_cast<const float*>(ws);
      ldp = K;
    }
    const uint8_t* codes = static_cast<const uint8_t*>(w.data);
    if (opts_.gemv_version >= 2 &&
        gemv_nvfp4_ok(xp, ldp, codes, w.ld, w.block_scale, w.scale_ld, K)) {
      launch_gemv_nvfp4(xp, T, ldp, codes, w.ld, w.block_scale, w.scale_ld, w.global_scale, N, K, y,
                        ldy, accumulate, m.stream);
      ck_launch("gemv_nvfp4");
      return;
    }
    launch_linear_nvfp4(xp, T, ldp, codes, w.ld, w.block_scale, w.scale_ld, w.global_scale, N, K, y,
                        ldy, accumulate, m.stream);
    ck_launch("linear_nvfp4");
    return;
  }
  const WDType wdt = dense_wdt(w);
  if (opts_.exact_linear || T <= opts_.simt_max_rows) {
    if (opts_.gemv_version >= 2 && wdt != WDType::kF32 &&
        gemv_dense16_ok(x, ldx, w.data, w.ld, K)) {
      launch_gemv_dense16(x, T, ldx, w.data, wdt, N, K, w.ld, y, ldy, accumulate, m.stream);
      ck_launch("gemv_dense16");
      return;
    }
    launch_linear_simt(x, T, ldx, w.data, wdt, N, K, w.ld, y, ldy, accumulate, m.stream);
    ck_launch("linear_simt");
    return;
  }
  // cuBLAS, column-major: y[N, T] (ld ldy) = W[K, N]ᵀ (ld w.ld) · x[K, T].
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  const void* xb = x;
  int64_t ldb = ldx;
  cudaDataType_t dt = CUDA_R_32F;
  if (wdt != WDType::kF32) {
    launch_convert(x, T, K, ldx, ws, wdt, m.stream);
    ck_launch("convert");
    xb = ws;
    ldb = K;
    dt = wdt == WDType::kBF16 ? CUDA_R_16BF : CUDA_R_16F;
  }
  ckb(cublasGemmEx(m.blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(T),
                   static_cast<int>(K), &alpha, w.data, dt, static_cast<int>(w.ld), xb, dt,
                   static_cast<int>(ldb), &beta, y, CUDA_R_32F, static_cast<int>(ldy),
                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "GemmEx");
}

// NVFP4 x [T, K] · Wᵀ for many rows: x (· pre_quant_scale) rounded to BF16 once, then per chunk
// of weight rows [n0, n0 + nc): the chunk dequantized to BF16 without its per-tensor scale (exact)
// and one cuBLAS GEMM y[:, n0:n0+nc] = global_scale · x_bf16 · chunkᵀ (+ y when accumulating).
void CudaBackend::linear_nvfp4_dequant(const float* x, int64_t T, int64_t ldx, const Weight& w,
                                       float* y, int64_t ldy, bool accumulate, char* ws) {
  Impl& m = *impl_;
  const int64_t N = w.rows, K = w.cols;
  const float* xp = x;
  int64_t ldp = ldx;
  char* rest = ws;
  if (w.pre_quant_scale) {
    launch_nvfp4_prepare(x, T, K, ldx, w.pre_quant_scale,
                         wdt_of(w.pqs_dtype, "pre_quant_scale of " + w.name), 0.0f,
                         reinterpret_cast<float*>(rest), m.stream);
    ck_launch("nvfp4_prepare");
    xp = reinterpret_cast<const float*>(rest);
    ldp = K;
    rest += ws_align(static_cast<size_t>(T * K) * 4);
  }
  void* xb = rest;
  launch_convert(xp, T, K, ldp, xb, WDType::kBF16, m.stream);
  ck_launch("convert");
  rest += ws_align(static_cast<size_t>(T * K) * 2);
  const int64_t rows = nvfp4_dequant_chunk_rows(N, K);
  const float alpha = w.global_scale, beta = accumulate ? 1.0f : 0.0f;
  const uint8_t* codes = static_cast<const uint8_t*>(w.data);
  for (int64_t n0 = 0; n0 < N; n0 += rows) {
    const int64_t nc = std::min(rows, N - n0);
    launch_nvfp4_dequant_bf16(codes + n0 * w.ld, w.ld, w.block_scale + n0 * w.scale_ld, w.scale_ld,
                              nc, K, rest, m.stream);
    ck_launch("nvfp4_dequant_bf16");
    // Column-major view: y[nc, T] (ld ldy) = chunk[K, nc]ᵀ (ld K) · x_bf16[K, T] (ld K).
    ckb(cublasGemmEx(m.blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(nc), static_cast<int>(T),
                     static_cast<int>(K), &alpha, rest, CUDA_R_16BF, static_cast<int>(K), xb,
                     CUDA_R_16BF, static_cast<int>(K), &beta, y + n0, CUDA_R_32F,
                     static_cast<int>(ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "GemmEx (NVFP4 dequantized)");
  }
}

void ck_launch(const char* op) {
  if (const char* e = last_launch_error()) fail("CUDA backend: ", op, " launch failed: ", e);
}

WDType wdt_of(DType d, const std::string& what, bool allow_fp8) {
  switch (d) {
    case DType::kF32:
      return WDType::kF32;
    case DType::kBF16:
      return WDType::kBF16;
    case DType::kF16:
      return WDType::kF16;
    case DType::kF8_E4M3:
      if (allow_fp8) return WDType::kFP8;
      [[fallthrough]];
    default:
      fail("CUDA backend: ", what, ": dtype ", dtype_name(d),
           allow_fp8 ? " is not supported" : " is not F32, BF16 or F16");
  }
}

}  // namespace fc::cuda
