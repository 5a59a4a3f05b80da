// NVFP4 matmul driver: argument checks, kernel-set choice, the activation layout of the direct
// kernels, blocking and threading. SIMD kernels live in nvfp4_matmul_avx512.cpp /
// nvfp4_matmul_avx2.cpp; the portable scalar set is here.
//
// Two paths, as for dense matmul (matmul.cpp):
//  * direct (T <= kDirectMaxT: decode, small batches): x is re-arranged once per call into the
//    order in which the kernels decode codes (nvfp4_kernels.h), threads get contiguous
//    nr-aligned ranges of W rows, and each nr-row group of packed codes + scales is read from
//    memory once and decoded in registers for all T activation rows (memory-bound at T = 1,
//    FMA-bound from T ~ 4).
//  * blocked (prefill): compute-bound. Panels of kPanelRows rows × a K block are dequantized into
//    a per-thread fp32 scratch (exactly quant::dequantize_row's values) and swept by the dense
//    fp32 register tiles of matmul's kernel set.
#include "backend/cpu/nvfp4_matmul.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "backend/cpu/gemm_amx.h"
#include "backend/cpu/gemm_packed.h"
#include "backend/cpu/matmul_kernels.h"
#include "backend/cpu/nvfp4_kernels.h"
#include "core/error.h"

namespace fc::cpu {
namespace detail {
namespace {

// ---- Portable scalar kernel set --------------------------------------------------------------

// On the plain activation layout (x_lanes = 1).
template <int MR, int NR>
struct ScalarNvfp4Tile {
  static void run(const float* xd, int64_t ldxd, const uint8_t* codes, int64_t ld,
                  const uint8_t* scales, int64_t sld, int64_t K, float gs, float* y, int64_t ldy,
                  bool add) {
    const float* e4m3 = quant::e4m3_table();
    float acc[MR][NR] = {};
    for (int64_t k = 0; k < K; k += 2) {  // byte k/2 holds columns k (low nibble) and k+1
      float wl[NR], wh[NR];
      for (int j = 0; j < NR; ++j) {
        const uint8_t byte = codes[j * ld + k / 2];
        const float s = e4m3[scales[j * sld + k / 16]] * gs;
        wl[j] = quant::kE2M1[byte & 0xF] * s;
        wh[j] = quant::kE2M1[byte >> 4] * s;
      }
      for (int i = 0; i < MR; ++i) {
        const float x0 = xd[i * ldxd + k], x1 = xd[i * ldxd + k + 1];
        for (int j = 0; j < NR; ++j) acc[i][j] += x0 * wl[j] + x1 * wh[j];
      }
    }
    for (int i = 0; i < MR; ++i) {
      for (int j = 0; j < NR; ++j) y[i * ldy + j] = add ? y[i * ldy + j] + acc[i][j] : acc[i][j];
    }
  }
};

void scalar_dequant(const uint8_t* codes, int64_t ld, const uint8_t* scales, int64_t sld,
                    int64_t rows, int64_t k0, int64_t cols, float gs, float* dst, int64_t ldd) {
  const float* e4m3 = quant::e4m3_table();
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* p = codes + r * ld;
    const uint8_t* s = scales + r * sld;
    float* d = dst + r * ldd;
    for (int64_t k = 0; k < cols; k += 2) {
      const uint8_t byte = p[(k0 + k) / 2];
      const float sc = e4m3[s[(k0 + k) / 16]] * gs;  // same operation order as dequantize_row
      d[k] = quant::kE2M1[byte & 0xF] * sc;
      d[k + 1] = quant::kE2M1[byte >> 4] * sc;
    }
  }
}

}  // namespace

void check_nvfp4_args(const char* fn, const float* x, int64_t T, int64_t ldx,
                      const quant::Nvfp4Matrix& w, const float* y, int64_t ldy) {
  FC_CHECK(T >= 0 && w.rows >= 0 && w.cols >= 0, fn, ": negative size (T=", T, ", rows=", w.rows,
           ", cols=", w.cols, ")");
  FC_CHECK(w.cols % 16 == 0, fn, ": cols ", w.cols, " is not a multiple of 16");
  FC_CHECK(w.ld >= w.cols / 2, fn, ": code row stride ", w.ld, " < cols/2 ", w.cols / 2);
  FC_CHECK(w.scale_ld >= w.cols / 16, fn, ": scale row stride ", w.scale_ld, " < cols/16 ",
           w.cols / 16);
  if (T > 1) {
    FC_CHECK(ldx >= w.cols, fn, ": activation row stride ", ldx, " < K ", w.cols);
    FC_CHECK(ldy >= w.rows, fn, ": output row stride ", ldy, " < N ", w.rows);
  }
  if (T > 0 && w.rows > 0) {
    FC_CHECK(y != nullptr, fn, ": null output");
    FC_CHECK(w.cols == 0 || (x != nullptr && w.packed != nullptr && w.scales != nullptr), fn,
             ": null input");
  }
}

Nvfp4KernelSet nvfp4_kernels_scalar() {
  Nvfp4KernelSet ks;
  ks.name = "scalar";
  ks.x_lanes = 1;
  fill_nvfp4_tiles<ScalarNvfp4Tile, 2, 4>(ks);
  ks.dequant = &scalar_dequant;
  return ks;
}

}  // namespace detail

namespace {

using detail::KernelSet;
using detail::Nvfp4KernelSet;

// Direct path up to this many activation rows. The direct tiles are FMA-bound from T ~ 4 on
// (~160 GFLOP/s per Zen 5 core, weights in cache) and stay ahead of dequantize-to-panel + fp32
// tiles up to T ~ 32 (K = 1536) - 48 (K = 6144), measured.
constexpr int64_t kDirectMaxT = 32;
// With AMX tiles (gemm_amx.h) the blocked path wins from ~6 rows (E2B q/gate/up, 2 threads, Xeon
// with AMX: T = 4 direct 87 GFLOP/s, tiles 64; T = 8: 87 against 129; T = 32: 85 against 479).
constexpr int64_t kAmxDirectMaxT = 5;
// The same with the integer direct kernels (avx512-vnni), 2x the bf16 ones from T = 4 on: tiles win
// from ~10 rows (bench_nvfp4's direct/blocked table, same shape and machine: T = 8 direct 876 us,
// tiles 1007; T = 9 994 / 956; T = 10 1051 / 964; K = 6144 down: T = 10 1057 / 1096, 12 1248 /
// 1020).
constexpr int64_t kAmxVnniDirectMaxT = 9;
// Prefill panel: weight rows dequantized together (a multiple of the dense kernels' nr: 3 and 4).
constexpr int64_t kPanelRows = 48;
// Prefill K block, at most (a multiple of 32): a 48 × 512 fp32 panel is 96 KiB (L2).
constexpr int64_t kMaxKBlock = 512;
// Less work than this (multiply-adds) per thread is not worth waking a thread for.
constexpr int64_t kMinMacsPerThread = int64_t{1} << 16;

// The family kAuto builds on (its blocked path; its direct kernels are measured, auto_kernels).
MatmulIsa resolve(MatmulIsa isa) {
  if (isa != MatmulIsa::kAuto) return isa;
  if (matmul_isa_supported(MatmulIsa::kAmx)) return MatmulIsa::kAmx;
  if (matmul_isa_supported(MatmulIsa::kAvx512Bf16)) return MatmulIsa::kAvx512Bf16;
  if (matmul_isa_supported(MatmulIsa::kAvx512)) return MatmulIsa::kAvx512;
  if (matmul_isa_supported(MatmulIsa::kAvx2I16)) return MatmulIsa::kAvx2I16;
  return MatmulIsa::kScalar;
}

// The NVFP4 kernels and the dense fp32 kernels (for the blocked path) of one family.
struct Kernels {
  Nvfp4KernelSet q;
  KernelSet dense;
  bool amx = false;  // the blocked path on AMX-BF16 tiles (gemm_amx.h) instead of `dense`
};

const Kernels& auto_kernels();

// The tables are built once per family (immutable after; a decode step makes hundreds of calls).
const Kernels& kernels_for(MatmulIsa isa) {
  if (isa == MatmulIsa::kAuto) return auto_kernels();
  FC_CHECK(matmul_isa_supported(isa), "nvfp4_matmul: this CPU does not support the requested ISA");
  switch (isa) {
    case MatmulIsa::kAmx: {
      static const Kernels k{detail::nvfp4_kernels_avx512_bf16(), detail::kernels_avx512(), true};
      return k;
    }
    case MatmulIsa::kAvx512Bf16: {
      static const Kernels k{detail::nvfp4_kernels_avx512_bf16(), detail::kernels_avx512()};
      return k;
    }
    case MatmulIsa::kAvx512Vnni: {
      static const Kernels k{detail::nvfp4_kernels_avx512_vnni(), detail::kernels_avx512()};
      return k;
    }
    case MatmulIsa::kAvx512: {
      static const Kernels k{detail::nvfp4_kernels_avx512(), detail::kernels_avx512()};
      return k;
    }
    case MatmulIsa::kAvx2I16: {
      static const Kernels k{detail::nvfp4_kernels_avx2_i16(), detail::kernels_avx2()};
      return k;
    }
    case MatmulIsa::kAvx2: {
      static const Kernels k{detail::nvfp4_kernels_avx2(), detail::kernels_avx2()};
      return k;
    }
    default: {
      static const Kernels k{detail::nvfp4_kernels_scalar(), detail::kernels_scalar()};
      return k;
    }
  }
}

int64_t nvfp4_direct_max_rows_of(const Kernels& ks) {
  if (!ks.amx) return kDirectMaxT;
  return ks.q.x_layout == detail::Nvfp4XLayout::kI8Planes ? kAmxVnniDirectMaxT : kAmxDirectMaxT;
}

void check_args(const float* x, int64_t T, int64_t ldx, const quant::Nvfp4Matrix& w, const float* y,
                int64_t ldy) {
  detail::check_nvfp4_args("nvfp4_matmul", x, T, ldx, w, y, ldy);
}

// x [T, K] (row stride ldx) into the direct kernels' layout (nvfp4_kernels.h); row stride ldxd
// (a multiple of the set's group), zeros past K.
void arrange(const Nvfp4KernelSet& ks, const float* x, int64_t T, int64_t ldx, int64_t K, float* xd,
             int64_t ldxd) {
  if (ks.arrange) {
    ks.arrange(x, T, ldx, K, xd, ldxd);
    return;
  }
  // Per group of G = 8L columns, xd[g*G + s*L + j] = x[g*G + 8j + s].
  const int L = ks.x_lanes;
  const int64_t G = 8 * int64_t{L};
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * ldx;
    float* d = xd + t * ldxd;
    for (int64_t g = 0; g < ldxd; g += G) {
      for (int s = 0; s < 8; ++s) {
        for (int j = 0; j < L; ++j) {
          const int64_t k = g + 8 * j + s;
          d[g + s * L + j] = k < K ? xr[k] : 0.0f;
        }
      }
    }
  }
}

struct Problem {
  const float* x = nullptr;  // [T, K], row stride ldx
  int64_t T = 0, ldx = 0;
  quant::Nvfp4Matrix w;  // [N, K]
  float* y = nullptr;    // [T, N], row stride ldy
  int64_t ldy = 0;
  bool accumulate = false;
};

void run_direct(const Nvfp4KernelSet& ks, const Problem& p, const float* xd, int64_t ldxd,
                int64_t n0, int64_t n1) {
  const quant::Nvfp4Matrix& w = p.w;
  for (int64_t n = n0; n < n1; n += ks.nr) {
    const int nr = static_cast<int>(std::min<int64_t>(ks.nr, n1 - n));
    for (int64_t t = 0; t < p.T; t += ks.mr) {
      const int mr = static_cast<int>(std::min<int64_t>(ks.mr, p.T - t));
      ks.tile[mr - 1][nr - 1](xd + t * ldxd, ldxd, w.packed + n * w.ld, w.ld,
                              w.scales + n * w.scale_ld, w.scale_ld, w.cols, w.global_scale,
                              p.y + t * p.ldy + n, p.ldy, p.accumulate);
    }
  }
}

// Seconds per call of one direct set on a decode-sized product in L2 (K = 2048, N = 256, T = 1,
// one thread, 128 KiB of codes; arranging the activations included), best of 7 after a warm-up.
double time_direct(const Nvfp4KernelSet& ks) {
  constexpr int64_t K = 2048, N = 256;
  std::vector<uint8_t> codes(static_cast<size_t>(N * K / 2)),
      scales(static_cast<size_t>(N * K / 16));
  uint32_t r = 12345;  // a fixed LCG: the timing must not depend on a seed
  const auto next = [&r] { return (r = r * 1664525u + 1013904223u) >> 24; };
  for (auto& c : codes) c = static_cast<uint8_t>(next());
  for (auto& s : scales) s = static_cast<uint8_t>(0x30 + next() % 16);  // finite, near 1
  std::vector<float> x(static_cast<size_t>(K)), y(static_cast<size_t>(N));
  for (auto& v : x) v = static_cast<float>(next()) / 256.0f - 0.5f;
  Problem p;
  p.x = x.data();
  p.T = 1;
  p.ldx = K;
  p.w.packed = codes.data();
  p.w.scales = scales.data();
  p.w.rows = N;
  p.w.cols = K;
  p.w.ld = K / 2;
  p.w.scale_ld = K / 16;
  p.w.global_scale = 1.0f;
  p.y = y.data();
  p.ldy = N;
  const int64_t ldxd = detail::nvfp4_x_row_floats(ks, K);
  std::vector<float> buf(static_cast<size_t>(ldxd + 16));
  const auto addr = reinterpret_cast<uintptr_t>(buf.data());
  float* xd = buf.data() + ((64 - addr % 64) % 64) / sizeof(float);  // 64-byte aligned
  double best = 0.0;
  for (int rep = 0; rep < 8; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    arrange(ks, p.x, 1, K, K, xd, ldxd);
    run_direct(ks, p, xd, ldxd, 0, N);
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep > 0 && (best == 0.0 || t < best)) best = t;
  }
  return best;
}

// kAuto: the family of resolve(kAuto) with the fastest direct (decode) kernel set of those the
// CPU supports, measured once per process. Which set wins depends on the core, not only on its
// instruction sets: on the Intel Xeon of docs/benchmarks.md vdpbf16ps retires one per two cycles,
// so there the integer set (vpdpbusd) is 1.5-2.4x and the fp32 one 1.3-1.6x the bf16 one, while
// on Zen 5 the bf16 set was 1.4x the fp32 one (the integer set was not measured there). Candidates
// in order of preference; a later one must be 10% faster to be taken, so that close timings do not
// flip the choice between runs.
const Kernels& auto_kernels() {
  static const Kernels k = [] {
    const MatmulIsa fam = resolve(MatmulIsa::kAuto);
    Kernels out = kernels_for(fam);
    std::vector<MatmulIsa> cands;
    if (matmul_isa_supported(MatmulIsa::kAvx512)) {
      cands = {MatmulIsa::kAvx512Vnni, MatmulIsa::kAvx512Bf16, MatmulIsa::kAvx512};
    } else if (matmul_isa_supported(MatmulIsa::kAvx2)) {
      cands = {MatmulIsa::kAvx2I16, MatmulIsa::kAvx2};
    }
    double best = 0.0;
    for (MatmulIsa c : cands) {
      if (!matmul_isa_supported(c)) continue;
      const Nvfp4KernelSet& q = kernels_for(c).q;
      const double t = time_direct(q);
      if (best == 0.0 || t < 0.9 * best) {
        best = t;
        out.q = q;
      }
    }
    return out;
  }();
  return k;
}

// y[t0:t1, n0:n1] (n0 a panel start) through fp32 panels of kPanelRows × kblock in scratch.
void run_blocked(const Kernels& ks, const Problem& p, int64_t n0, int64_t n1, int64_t t0,
                 int64_t t1, int64_t kblock, float* scratch) {
  const KernelSet& d = ks.dense;
  const quant::Nvfp4Matrix& w = p.w;
  constexpr int kF32 = static_cast<int>(detail::WKind::kF32);
  for (int64_t nb = n0; nb < n1; nb += kPanelRows) {
    const int64_t rows = std::min(kPanelRows, n1 - nb);
    for (int64_t kb = 0; kb < w.cols; kb += kblock) {
      const int64_t kl = std::min(kblock, w.cols - kb);
      ks.q.dequant(w.packed + nb * w.ld, w.ld, w.scales + nb * w.scale_ld, w.scale_ld, rows, kb, kl,
                   w.global_scale, scratch, kblock);
      const bool add = p.accumulate || kb > 0;  // later K blocks add onto the partial sums
      for (int64_t t = t0; t < t1; t += d.mr) {
        const int mr = static_cast<int>(std::min<int64_t>(d.mr, t1 - t));
        const float* xt = p.x + t * p.ldx + kb;
        float* yt = p.y + t * p.ldy + nb;
        for (int64_t n = 0; n < rows; n += d.nr) {
          const int nr = static_cast<int>(std::min<int64_t>(d.nr, rows - n));
          d.tile[kF32][mr - 1][nr - 1](xt, p.ldx, scratch + n * kblock, kblock, kl, yt + n, p.ldy,
                                       add);
        }
      }
    }
  }
}

void run(const Kernels& ks, ThreadPool& pool, const Problem& p, MatmulPath path) {
  const int64_t T = p.T, N = p.w.rows, K = p.w.cols;
  const int64_t threads =
      std::clamp<int64_t>(T * N * K / kMinMacsPerThread, 1, static_cast<int64_t>(pool.size()));
  if (path == MatmulPath::kAuto)
    path = T <= nvfp4_direct_max_rows_of(ks) ? MatmulPath::kDirect : MatmulPath::kBlocked;

  if (path == MatmulPath::kDirect) {
    // The re-arranged activations: per call, reused by every row group (L1/L2 resident). A
    // thread_local buffer of the calling thread avoids an allocation per decode step.
    thread_local std::vector<float> xd_buf;
    const int64_t ldxd = detail::nvfp4_x_row_floats(ks.q, K);
    if (xd_buf.size() < static_cast<size_t>(T * ldxd + 16)) {
      xd_buf.resize(static_cast<size_t>(T * ldxd + 16));
    }
    const auto addr = reinterpret_cast<uintptr_t>(xd_buf.data());
    float* xd = xd_buf.data() + ((64 - addr % 64) % 64) / sizeof(float);  // 64-byte aligned
    arrange(ks.q, p.x, T, p.ldx, K, xd, ldxd);
    const int64_t per = (N + threads - 1) / threads;
    const int64_t grain = (per + ks.q.nr - 1) / ks.q.nr * ks.q.nr;
    pool.parallel_for(N, grain,
                      [&](int64_t b, int64_t e, int) { run_direct(ks.q, p, xd, ldxd, b, e); });
    return;
  }

  if (ks.amx) {  // e2m1 · e4m3 in bf16 tiles, the global scale on the sums (gemm_amx.h)
    const quant::Nvfp4Matrix& w = p.w;
    // Two activation parts, as the AVX512-BF16 direct kernels: decode- and prefill-sized steps
    // see the same products (only their summation order differs).
    detail::AmxGemmProblem g{{p.x, T, p.ldx, N, K, p.y, p.ldy, p.accumulate}, w.global_scale, 2};
    detail::amx_gemm(
        pool, g, 16, threads,
        [&](int64_t n0, int64_t rows, int64_t k0, int64_t kc, uint16_t* dst, int64_t ldd) {
          detail::amx_fill_nvfp4(w.packed, w.ld, w.scales, w.scale_ld, n0, rows, k0, kc, dst, ldd);
        });
    return;
  }
  if (ks.dense.gemm) {  // packed panels (gemm_packed.h), dequantized exactly as dequantize_row
    const quant::Nvfp4Matrix& w = p.w;
    detail::GemmProblem g{p.x, T, p.ldx, N, K, p.y, p.ldy, p.accumulate};
    detail::packed_gemm(
        ks.dense, pool, g, 16, threads,
        [&](int64_t n0, int64_t rows, int64_t k0, int64_t kc, float* tmp, int64_t* lds) {
          ks.q.dequant(w.packed + n0 * w.ld, w.ld, w.scales + n0 * w.scale_ld, w.scale_ld, rows, k0,
                       kc, w.global_scale, tmp, kc);
          *lds = kc;
          return static_cast<const float*>(tmp);
        });
    return;
  }
  // K blocks: multiples of 32 columns (whole chunks; scratch rows stay 64-byte aligned).
  const detail::BlockedSplit sp =
      detail::split_blocked(T, N, K, kPanelRows, ks.dense.mr, kMaxKBlock, 32, threads);
  pool.parallel_for(sp.tasks, sp.grain, [&](int64_t b, int64_t e, int) {
    // Per-call, per-thread scratch, 64-byte aligned; every element read is written first.
    std::unique_ptr<float[]> buf(new float[static_cast<size_t>(kPanelRows * sp.kblock + 16)]);
    const auto addr = reinterpret_cast<uintptr_t>(buf.get());
    float* scratch = buf.get() + ((64 - addr % 64) % 64) / sizeof(float);
    sp.for_runs(b, e, [&](int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
      run_blocked(ks, p, n0, n1, t0, t1, sp.kblock, scratch);
    });
  });
}

}  // namespace

void nvfp4_matmul_with_isa(MatmulIsa isa, ThreadPool& pool, const float* x, int64_t T, int64_t ldx,
                           const quant::Nvfp4Matrix& w, float* y, int64_t ldy, bool accumulate,
                           MatmulPath path) {
  check_args(x, T, ldx, w, y, ldy);
  const Kernels& ks = kernels_for(isa);
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
  p.w = w;
  p.y = y;
  p.ldy = ldy;
  p.accumulate = accumulate;
  run(ks, pool, p, path);
}

void nvfp4_matmul(ThreadPool& pool, const float* x, int64_t T, int64_t ldx,
                  const quant::Nvfp4Matrix& w, float* y, int64_t ldy, bool accumulate) {
  nvfp4_matmul_with_isa(MatmulIsa::kAuto, pool, x, T, ldx, w, y, ldy, accumulate);
}

MatmulIsa nvfp4_fp32_isa() {
  const MatmulIsa isa = resolve(MatmulIsa::kAuto);
  if (isa == MatmulIsa::kAmx || isa == MatmulIsa::kAvx512Bf16 || isa == MatmulIsa::kAvx512Vnni)
    return MatmulIsa::kAvx512;
  if (isa == MatmulIsa::kAvx2I16) return MatmulIsa::kAvx2;
  return isa;
}

int64_t nvfp4_direct_max_rows(MatmulIsa isa) {
  return nvfp4_direct_max_rows_of(kernels_for(isa));
}

const char* nvfp4_matmul_isa() {
  const Kernels& k = kernels_for(MatmulIsa::kAuto);
  return k.amx ? "amx-bf16" : k.q.name;
}

const char* nvfp4_direct_kernels() {
  return kernels_for(MatmulIsa::kAuto).q.name;
}

void nvfp4_matmul_ref(const float* x, int64_t T, int64_t ldx, const quant::Nvfp4Matrix& w, float* y,
                      int64_t ldy, bool accumulate) {
  check_args(x, T, ldx, w, y, ldy);
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t n = 0; n < w.rows; ++n) {
    quant::dequantize_row(w, n, row.data());
    for (int64_t t = 0; t < T; ++t) {
      float s = 0.0f;
      for (int64_t k = 0; k < w.cols; ++k) s += x[t * ldx + k] * row[static_cast<size_t>(k)];
      y[t * ldy + n] = accumulate ? y[t * ldy + n] + s : s;
    }
  }
}

}  // namespace fc::cpu
