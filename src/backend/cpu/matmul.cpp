// Matmul driver: argument checks, kernel-set choice, blocking and threading. The SIMD register
// tiles live in matmul_avx512.cpp / matmul_avx2.cpp; the portable scalar set is here.
//
// Two paths:
//  * direct (decode, T <= kDirectMaxT, or few activations in total): memory-bound GEMV. Threads
//    get contiguous nr-aligned ranges of W rows; each group of nr rows is read from memory once
//    (software-prefetched one group ahead), widened in registers and used for all T activation
//    rows (re-reads for later activation tiles hit L1/L2).
//  * blocked (prefill): compute-bound. W is cut into panels of kPanelRows rows x a K block; a
//    16-bit panel is widened once into a thread-local fp32 scratch buffer (F32 weights are used
//    in place) and reused by every activation tile, which sweeps the panel with the mr x nr
//    register tile. The activation tile (mr x K block) stays in L1, the panel in L2.
#include "backend/cpu/matmul.h"

#include <cpuid.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "backend/cpu/gemm_amx.h"
#include "backend/cpu/gemm_packed.h"
#include "backend/cpu/matmul_kernels.h"
#include "core/error.h"
#include "core/half.h"

namespace fc::cpu {
namespace detail {
namespace {

// ---- Portable scalar kernel set --------------------------------------------------------------

template <WKind W>
inline float load_scalar(const void* row, int64_t k) {
  // memcpy: weights from an mmap'ed checkpoint need not be aligned to their element size.
  const char* p = static_cast<const char*>(row) + k * wkind_bytes(W);
  if constexpr (W == WKind::kF32) {
    float f;
    std::memcpy(&f, p, sizeof(f));
    return f;
  } else {
    uint16_t h;
    std::memcpy(&h, p, sizeof(h));
    return W == WKind::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

template <WKind W, int MR, int NR>
struct ScalarTile {
  static void run(const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t K, float* y,
                  int64_t ldy, bool add) {
    const char* wb = static_cast<const char*>(w);
    float acc[MR][NR] = {};
    for (int64_t k = 0; k < K; ++k) {
      float wv[NR];
      for (int j = 0; j < NR; ++j) wv[j] = load_scalar<W>(wb + j * ldw * wkind_bytes(W), k);
      for (int i = 0; i < MR; ++i) {
        const float xv = x[i * ldx + k];
        for (int j = 0; j < NR; ++j) acc[i][j] += xv * wv[j];
      }
    }
    for (int i = 0; i < MR; ++i) {
      for (int j = 0; j < NR; ++j) y[i * ldy + j] = add ? y[i * ldy + j] + acc[i][j] : acc[i][j];
    }
  }
};

template <WKind W>
void scalar_widen_rows(const void* src, int64_t lds, int64_t rows, int64_t cols, float* dst,
                       int64_t ldd) {
  const char* sb = static_cast<const char*>(src);
  for (int64_t r = 0; r < rows; ++r) {
    const void* row = sb + r * lds * wkind_bytes(W);
    for (int64_t c = 0; c < cols; ++c) dst[r * ldd + c] = load_scalar<W>(row, c);
  }
}

void scalar_widen(const void* src, WKind kind, int64_t lds, int64_t rows, int64_t cols, float* dst,
                  int64_t ldd) {
  switch (kind) {
    case WKind::kF32:
      return scalar_widen_rows<WKind::kF32>(src, lds, rows, cols, dst, ldd);
    case WKind::kBF16:
      return scalar_widen_rows<WKind::kBF16>(src, lds, rows, cols, dst, ldd);
    case WKind::kF16:
      return scalar_widen_rows<WKind::kF16>(src, lds, rows, cols, dst, ldd);
  }
}

}  // namespace

KernelSet kernels_scalar() {
  KernelSet ks;
  ks.name = "scalar";
  fill_all_tiles<ScalarTile, 2, 4>(ks);
  ks.widen = &scalar_widen;
  set_gemm_scalar(ks);
  return ks;
}

}  // namespace detail

namespace {

using detail::KernelSet;
using detail::WKind;

// Direct path (W read in place, widened in registers, no K blocking) when T is decode-sized or
// the activations are small enough to stay in L2 (<= 512 KiB) while each nr-row group of W
// sweeps over them. Measured on Zen 5 (1 MiB L2): direct beats blocked up to T*K ~ 200K.
constexpr int64_t kDirectMaxT = 8;
constexpr int64_t kDirectMaxActivations = int64_t{1} << 17;  // T*K floats
// With AMX tiles for BF16 weights (gemm_amx.h) the blocked path wins from ~12 rows on whatever
// the activations' size (E2B shapes, 2 threads, Xeon with AMX: T = 12 direct 176-199 GFLOP/s,
// tiles 199-211; T = 64: 179-208 against 758-864).
constexpr int64_t kAmxDirectMaxT = 10;
// Prefill panel: W rows widened together (a multiple of every kernel set's nr: 3 and 4).
constexpr int64_t kPanelRows = 48;
// Prefill K block, at most: a 48 x 512 fp32 panel is 96 KiB (L2), a 4 x 512 activation tile is
// 8 KiB (L1). 512 measured better than 256, 384 and 1024.
constexpr int64_t kMaxKBlock = 512;
// Less work than this (multiply-adds) per thread is not worth waking a thread for.
constexpr int64_t kMinMacsPerThread = int64_t{1} << 16;

bool cpu_has_avx512() {
  __builtin_cpu_init();  // idempotent; makes the check valid even before static constructors ran
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
}

bool cpu_has_avx512_vnni() {
  __builtin_cpu_init();
  return cpu_has_avx512() && __builtin_cpu_supports("avx512vnni");
}

bool cpu_has_avx512_bf16() {
  __builtin_cpu_init();
  return cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
}

// F16C is CPUID leaf 1, ECX bit 29. Asked through cpuid.h because clang before 15 does not
// know "f16c" as a __builtin_cpu_supports feature (a compile error in the clang sanitizer builds).
// Asked once: every matmul call checks its ISA, and CPUID traps to the hypervisor in a VM
// (bench_nvfp4's kv-proj decode shape spent ~2% of its time in it).
bool cpu_has_f16c() {
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
    return (ecx & (1u << 29)) != 0;
  }();
  return has;
}

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
}

MatmulIsa resolve(MatmulIsa isa) {
  if (isa != MatmulIsa::kAuto) return isa;
  if (detail::amx_bf16_usable()) return MatmulIsa::kAmx;
  if (cpu_has_avx512()) return MatmulIsa::kAvx512;
  if (cpu_has_avx2()) return MatmulIsa::kAvx2;
  return MatmulIsa::kScalar;
}

// Built once per family (immutable after; a decode step makes hundreds of calls).
const KernelSet& kernels_for(MatmulIsa isa) {
  switch (resolve(isa)) {
    case MatmulIsa::kAmx:
      FC_CHECK(detail::amx_bf16_usable(), "matmul: this CPU (or kernel) does not support AMX-BF16");
      [[fallthrough]];
    case MatmulIsa::kAvx512Bf16:
      FC_CHECK(cpu_has_avx512_bf16(), "matmul: this CPU does not support AVX512_BF16");
      [[fallthrough]];
    case MatmulIsa::kAvx512Vnni:
    case MatmulIsa::kAvx512: {
      FC_CHECK(cpu_has_avx512(), "matmul: this CPU does not support AVX-512 (F/BW/VL)");
      static const KernelSet k = detail::kernels_avx512();
      return k;
    }
    case MatmulIsa::kAvx2I16:
    case MatmulIsa::kAvx2: {
      FC_CHECK(cpu_has_avx2(), "matmul: this CPU does not support AVX2/FMA/F16C");
      static const KernelSet k = detail::kernels_avx2();
      return k;
    }
    default: {
      static const KernelSet k = detail::kernels_scalar();
      return k;
    }
  }
}

WKind weight_kind(DType t) {
  switch (t) {
    case DType::kF32:
      return WKind::kF32;
    case DType::kBF16:
      return WKind::kBF16;
    case DType::kF16:
      return WKind::kF16;
    default:
      fail("matmul: weight dtype ", dtype_name(t), " is not supported (F32, BF16 or F16)");
  }
}

void check_args(const float* x, int64_t T, int64_t ldx, const MatView& w, const float* y,
                int64_t ldy) {
  (void)weight_kind(w.dtype);
  FC_CHECK(T >= 0 && w.rows >= 0 && w.cols >= 0, "matmul: negative size (T=", T, ", rows=", w.rows,
           ", cols=", w.cols, ")");
  FC_CHECK(w.ld >= w.cols, "matmul: weight row stride ", w.ld, " < cols ", w.cols);
  if (T > 1) {
    FC_CHECK(ldx >= w.cols, "matmul: activation row stride ", ldx, " < K ", w.cols);
    FC_CHECK(ldy >= w.rows, "matmul: output row stride ", ldy, " < N ", w.rows);
  }
  if (T > 0 && w.rows > 0) {
    FC_CHECK(y != nullptr, "matmul: null output");
    FC_CHECK(w.cols == 0 || (x != nullptr && w.data != nullptr), "matmul: null input");
  }
}

// Everything the per-thread loops need, already validated.
struct Problem {
  const float* x = nullptr;  // [T, K], row stride ldx
  int64_t T = 0, ldx = 0;
  const char* w = nullptr;  // W[0, 0]; W is [N, K], row stride ld elements of `kind`
  WKind kind = WKind::kF32;
  int64_t N = 0, K = 0, ld = 0;
  float* y = nullptr;  // [T, N], row stride ldy
  int64_t ldy = 0;
  bool accumulate = false;

  const char* w_at(int64_t n, int64_t k) const {
    return w + (n * ld + k) * detail::wkind_bytes(kind);
  }
};

// Direct path: y[:, n0:n1] over the full K, reading W rows [n0, n1) in place, each nr-row group
// once from memory for all T activation rows.
void run_direct(const KernelSet& ks, const Problem& p, int64_t n0, int64_t n1) {
  const int kind = static_cast<int>(p.kind);
  for (int64_t n = n0; n < n1; n += ks.nr) {
    const int nr = static_cast<int>(std::min<int64_t>(ks.nr, n1 - n));
    for (int64_t t = 0; t < p.T; t += ks.mr) {
      const int mr = static_cast<int>(std::min<int64_t>(ks.mr, p.T - t));
      ks.tile[kind][mr - 1][nr - 1](p.x + t * p.ldx, p.ldx, p.w_at(n, 0), p.ld, p.K,
                                    p.y + t * p.ldy + n, p.ldy, p.accumulate);
    }
  }
}

// Blocked path: y[t0:t1, n0:n1], n0 a panel start. scratch: kPanelRows × kblock floats (row stride
// kblock), unused for F32 weights.
void run_blocked(const KernelSet& ks, const Problem& p, int64_t n0, int64_t n1, int64_t t0,
                 int64_t t1, int64_t kblock, float* scratch) {
  constexpr int kF32 = static_cast<int>(WKind::kF32);
  for (int64_t nb = n0; nb < n1; nb += kPanelRows) {
    const int64_t rows = std::min(kPanelRows, n1 - nb);
    for (int64_t kb = 0; kb < p.K; kb += kblock) {
      const int64_t kl = std::min(kblock, p.K - kb);
      const char* panel;
      int64_t ldp;  // panel row stride, floats
      if (p.kind == WKind::kF32) {
        panel = p.w_at(nb, kb);
        ldp = p.ld;
      } else {
        ks.widen(p.w_at(nb, kb), p.kind, p.ld, rows, kl, scratch, kblock);
        panel = reinterpret_cast<const char*>(scratch);
        ldp = kblock;
      }
      const bool add = p.accumulate || kb > 0;  // later K blocks add onto the partial sums
      for (int64_t t = t0; t < t1; t += ks.mr) {
        const int mr = static_cast<int>(std::min<int64_t>(ks.mr, t1 - t));
        const float* xt = p.x + t * p.ldx + kb;
        float* yt = p.y + t * p.ldy + nb;
        for (int64_t n = 0; n < rows; n += ks.nr) {
          const int nr = static_cast<int>(std::min<int64_t>(ks.nr, rows - n));
          ks.tile[kF32][mr - 1][nr - 1](xt, p.ldx, panel + n * ldp * sizeof(float), ldp, kl, yt + n,
                                        p.ldy, add);
        }
      }
    }
  }
}

void run(const KernelSet& ks, ThreadPool& pool, const Problem& p, MatmulPath path, bool amx) {
  const int64_t T = p.T, N = p.N, K = p.K;
  const int64_t macs = T * N * K;
  const int64_t threads =
      std::clamp<int64_t>(macs / kMinMacsPerThread, 1, static_cast<int64_t>(pool.size()));

  const bool tiles = amx && p.kind == WKind::kBF16;  // BF16 weights on AMX tiles (gemm_amx.h)
  if (path == MatmulPath::kAuto && tiles) {
    path = T <= kAmxDirectMaxT ? MatmulPath::kDirect : MatmulPath::kBlocked;
  } else if (path == MatmulPath::kAuto) {
    path = T <= kDirectMaxT || T * K <= kDirectMaxActivations ? MatmulPath::kDirect
                                                              : MatmulPath::kBlocked;
  }
  if (path == MatmulPath::kDirect) {
    // One contiguous, nr-aligned range of W rows per thread.
    const int64_t per = (N + threads - 1) / threads;
    const int64_t grain = (per + ks.nr - 1) / ks.nr * ks.nr;
    pool.parallel_for(N, grain, [&](int64_t b, int64_t e, int) { run_direct(ks, p, b, e); });
    return;
  }
  if (tiles) {
    // Three activation parts: as close to the fp32 sums as the fp32 direct kernels.
    detail::AmxGemmProblem g{{p.x, T, p.ldx, N, K, p.y, p.ldy, p.accumulate}, 1.0f, 3};
    const auto* w = reinterpret_cast<const uint16_t*>(p.w);
    detail::amx_gemm(
        pool, g, 1, threads,
        [&](int64_t n0, int64_t rows, int64_t k0, int64_t kc, uint16_t* dst, int64_t ldd) {
          detail::amx_fill_bf16(w, p.ld, n0, rows, k0, kc, dst, ldd);
        });
    return;
  }
  if (ks.gemm) {  // packed panels (gemm_packed.h); F32 weights are packed from where they are
    detail::GemmProblem g{p.x, T, p.ldx, N, K, p.y, p.ldy, p.accumulate};
    detail::packed_gemm(
        ks, pool, g, 8, threads,
        [&](int64_t n0, int64_t rows, int64_t k0, int64_t kc, float* tmp, int64_t* lds) {
          if (p.kind == WKind::kF32) {
            *lds = p.ld;
            return reinterpret_cast<const float*>(p.w_at(n0, k0));
          }
          ks.widen(p.w_at(n0, k0), p.kind, p.ld, rows, kc, tmp, kc);
          *lds = kc;
          return static_cast<const float*>(tmp);
        });
    return;
  }

  // K blocks: multiples of 16 floats (so scratch rows stay 64-byte aligned).
  const detail::BlockedSplit sp =
      detail::split_blocked(T, N, K, kPanelRows, ks.mr, kMaxKBlock, 16, threads);
  pool.parallel_for(sp.tasks, sp.grain, [&](int64_t b, int64_t e, int) {
    // Per-call, per-thread scratch: no shared state, so concurrent calls are safe.
    std::unique_ptr<float[]> buf;  // uninitialised: every element is written before it is read
    float* scratch = nullptr;
    if (p.kind != WKind::kF32) {
      buf.reset(new float[static_cast<size_t>(kPanelRows * sp.kblock + 16)]);
      const auto addr = reinterpret_cast<uintptr_t>(buf.get());
      scratch = buf.get() + ((64 - addr % 64) % 64) / sizeof(float);  // 64-byte aligned
    }
    sp.for_runs(b, e, [&](int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
      run_blocked(ks, p, n0, n1, t0, t1, sp.kblock, scratch);
    });
  });
}

}  // namespace

void matmul_with_isa(MatmulIsa isa, ThreadPool& pool, const float* x, int64_t T, int64_t ldx,
                     const MatView& w, float* y, int64_t ldy, bool accumulate, MatmulPath path) {
  check_args(x, T, ldx, w, y, ldy);
  const KernelSet& ks = kernels_for(isa);
  if (T == 0 || w.rows == 0) return;
  if (w.cols == 0) {  // empty sums
    if (!accumulate) {
      for (int64_t t = 0; t < T; ++t) std::fill_n(y + t * ldy, w.rows, 0.0f);
    }
    return;
  }
  Problem p;
  p.x = x;
  p.T = T;
  p.ldx = ldx;
  p.w = static_cast<const char*>(w.data);
  p.kind = weight_kind(w.dtype);
  p.N = w.rows;
  p.K = w.cols;
  p.ld = w.ld;
  p.y = y;
  p.ldy = ldy;
  p.accumulate = accumulate;
  run(ks, pool, p, path, resolve(isa) == MatmulIsa::kAmx);
}

void matmul(ThreadPool& pool, const float* x, int64_t T, int64_t ldx, const MatView& w, float* y,
            int64_t ldy, bool accumulate) {
  matmul_with_isa(MatmulIsa::kAuto, pool, x, T, ldx, w, y, ldy, accumulate);
}

void matmul_ref(const float* x, int64_t T, int64_t ldx, const MatView& w, float* y, int64_t ldy,
                bool accumulate) {
  check_args(x, T, ldx, w, y, ldy);
  const WKind kind = weight_kind(w.dtype);
  const char* wb = static_cast<const char*>(w.data);
  const int64_t es = detail::wkind_bytes(kind);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t n = 0; n < w.rows; ++n) {
      const char* row = wb + n * w.ld * es;
      float s = 0.0f;
      for (int64_t k = 0; k < w.cols; ++k) {
        float wk;
        switch (kind) {
          case WKind::kF32:
            wk = detail::load_scalar<WKind::kF32>(row, k);
            break;
          case WKind::kBF16:
            wk = detail::load_scalar<WKind::kBF16>(row, k);
            break;
          default:
            wk = detail::load_scalar<WKind::kF16>(row, k);
            break;
        }
        s += x[t * ldx + k] * wk;
      }
      y[t * ldy + n] = accumulate ? y[t * ldy + n] + s : s;
    }
  }
}

const char* matmul_isa() {
  switch (resolve(MatmulIsa::kAuto)) {
    case MatmulIsa::kAmx:
      return "amx-bf16";
    case MatmulIsa::kAvx512:
      return "avx512";
    case MatmulIsa::kAvx2:
      return "avx2";
    default:
      return "scalar";
  }
}

bool matmul_isa_supported(MatmulIsa isa) {
  switch (isa) {
    case MatmulIsa::kAmx:
      return detail::amx_bf16_usable();
    case MatmulIsa::kAvx512Bf16:
      return cpu_has_avx512_bf16();
    case MatmulIsa::kAvx512Vnni:
      return cpu_has_avx512_vnni();
    case MatmulIsa::kAvx512:
      return cpu_has_avx512();
    case MatmulIsa::kAvx2I16:
    case MatmulIsa::kAvx2:
      return cpu_has_avx2();
    default:
      return true;
  }
}

}  // namespace fc::cpu
