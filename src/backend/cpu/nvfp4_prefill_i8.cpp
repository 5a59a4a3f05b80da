// Int8 NVFP4 prefill (nvfp4_prefill_i8.h): the scalar definitions, the portable scalar kernels
// on the packed layout (nvfp4_prefill_i8_kernels.h), and the driver (blocking, threads).
//
// Blocking: weight panels of kPanelRows rows × K blocks of <= kKc columns are packed once per
// thread task (64 rows × 1024 columns: 96 KiB, L2) and swept by every activation row in blocks
// of kMcRows rows (120 × 1024 bytes of xq, L2); each 12 KiB micro-panel stays in L1 while the
// register tiles of 4 rows pass it.
#include "backend/cpu/nvfp4_prefill_i8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "backend/cpu/gemm_packed.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/nvfp4_kernels.h"
#include "backend/cpu/nvfp4_prefill_i8_kernels.h"
#include "core/error.h"

namespace fc::cpu {
namespace detail {
namespace {

constexpr int64_t kPanelRows = 64;  // 8 micro-panels
constexpr int64_t kKc = 1024;       // the AVX2 pack's buffers hold <= 1024 columns
constexpr int64_t kMcRows = 120;

// 2·e2m1 of a 4-bit code.
inline int code_value(unsigned c) {
  static constexpr int kV[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  return kV[c & 0xF];
}

inline int code_at(const quant::Nvfp4Matrix& w, int64_t n, int64_t k) {
  const uint8_t byte = w.packed[n * w.ld + k / 2];
  return code_value(k % 2 ? byte >> 4 : byte & 0xF);
}

void scalar_pack(const uint8_t* codes, int64_t ld, const uint8_t* scales, int64_t sld, int64_t rows,
                 int64_t k0, int64_t kc, float gs, uint8_t* dst) {
  const float* e4m3 = quant::e4m3_table();
  const int64_t blocks = kc / 16;
  for (int64_t p = 0; p * kI8PanelRows < rows; ++p) {
    for (int64_t b = 0; b < blocks; ++b) {
      uint8_t* o = dst + (p * blocks + b) * kI8BlockBytes;
      for (int r = 0; r < kI8PanelRows; ++r) {
        const int64_t n = p * kI8PanelRows + r;
        int32_t sum = 0;
        float wsc = 0.0f;
        for (int k = 0; k < 16; ++k) {
          int v = 0;
          if (n < rows) {
            const int64_t col = k0 + 16 * b + k;
            const uint8_t byte = codes[n * ld + col / 2];
            v = code_value(col % 2 ? byte >> 4 : byte & 0xF);
          }
          o[32 * (k / 4) + 4 * r + k % 4] = static_cast<uint8_t>(static_cast<int8_t>(v));
          sum += v;
        }
        if (n < rows) wsc = e4m3[scales[n * sld + k0 / 16 + b]] * gs;
        const int32_t corr = 128 * sum;
        std::memcpy(o + 128 + 4 * r, &corr, 4);
        std::memcpy(o + 160 + 4 * r, &wsc, 4);
      }
    }
  }
}

void scalar_quantize(const float* x, int64_t T, int64_t ldx, int64_t K, uint8_t* xq, int64_t ldq,
                     float* xs, int64_t ldxs) {
  for (int64_t t = 0; t < T; ++t) quantize_row_i8(x + t * ldx, K, xq + t * ldq, xs + t * ldxs);
}

void scalar_tile(const uint8_t* xq, int64_t ldq, const float* xs, int64_t ldxs,
                 const uint8_t* panel, int64_t blocks, float* y, int64_t ldy, int mr, int nr,
                 bool add) {
  for (int i = 0; i < mr; ++i) {
    for (int j = 0; j < nr; ++j) {
      float acc = 0.0f;
      for (int64_t b = 0; b < blocks; ++b) {
        const uint8_t* o = panel + b * kI8BlockBytes;
        int32_t s = 0;
        for (int k = 0; k < 16; ++k) {
          const int v = static_cast<int8_t>(o[32 * (k / 4) + 4 * j + k % 4]);
          s += static_cast<int32_t>(xq[i * ldq + 16 * b + k]) * v;
        }
        int32_t corr;
        float wsc;
        std::memcpy(&corr, o + 128 + 4 * j, 4);
        std::memcpy(&wsc, o + 160 + 4 * j, 4);
        acc = std::fma(static_cast<float>(s - corr), wsc * xs[i * ldxs + b], acc);
      }
      y[i * ldy + j] = add ? y[i * ldy + j] + acc : acc;
    }
  }
}

}  // namespace

void quantize_row_i8(const float* x, int64_t K, uint8_t* xq, float* xs) {
  for (int64_t b = 0; b < K / 16; ++b) {
    float amax = 0.0f;
    for (int k = 0; k < 16; ++k) amax = std::max(amax, std::fabs(x[16 * b + k]));
    if (!(amax > 0.0f)) {
      std::memset(xq + 16 * b, 128, 16);
      xs[b] = 0.0f;
      continue;
    }
    const float inv = 127.0f / amax;
    for (int k = 0; k < 16; ++k) {
      const int q = static_cast<int>(std::nearbyint(x[16 * b + k] * inv));
      xq[16 * b + k] = static_cast<uint8_t>(q + 128);
    }
    xs[b] = amax / 127.0f * 0.5f;
  }
}

void arrange_i8_direct(const uint8_t* xq, int64_t ldq, const float* xs, int64_t ldxs, int64_t T,
                       int64_t K, uint8_t* xd, int64_t ldxd) {
  const int64_t groups = (K + kI8DirectGroup - 1) / kI8DirectGroup;
  for (int64_t t = 0; t < T; ++t) {
    const uint8_t* q = xq + t * ldq;
    const float* s = xs + t * ldxs;
    for (int64_t g = 0; g < groups; ++g) {
      uint8_t* o = xd + t * ldxd + g * kI8DirectGroupBytes;
      const int64_t k0 = g * kI8DirectGroup, n = std::min(kI8DirectGroup, K - k0);
      int32_t c[8] = {};
      float a[8] = {};
      for (int64_t k = 0; k < kI8DirectGroup; ++k) {
        const int v = k < n ? static_cast<int>(q[k0 + k]) - 128 : 0;
        o[32 * (k % 2) + k / 2] = static_cast<uint8_t>(static_cast<int8_t>(v));
        c[k / 8] += 12 * v;
      }
      for (int64_t h = 0; 8 * h < n; ++h) a[h] = 256.0f * s[(k0 + 8 * h) / 16];
      std::memcpy(o + 64, c, sizeof(c));
      std::memcpy(o + 96, a, sizeof(a));
    }
  }
}

I8Kernels i8_kernels_scalar() {
  return I8Kernels{&scalar_pack, &scalar_quantize, &scalar_tile};
}

}  // namespace detail

namespace {

void check_args(const float* x, int64_t T, int64_t ldx, const quant::Nvfp4Matrix& w, const float* y,
                int64_t ldy) {
  detail::check_nvfp4_args("nvfp4_matmul_i8", x, T, ldx, w, y, ldy);
}

// 32-byte aligned storage of n elements (+ slack).
template <typename E>
struct Aligned {
  std::unique_ptr<E[]> buf;
  E* p = nullptr;
  explicit Aligned(int64_t n) : buf(new E[static_cast<size_t>(n) + 64 / sizeof(E)]) {
    const auto addr = reinterpret_cast<uintptr_t>(buf.get());
    p = buf.get() + ((64 - addr % 64) % 64) / sizeof(E);
  }
};

// Below kI8DirectMaxT + 1 rows (decode, small batches, MoE experts): activations quantized and
// arranged once per call on the calling thread (kilobytes), weights read once in checkpoint
// layout by the direct tiles, threads over contiguous nr-aligned ranges of W rows.
void direct(const detail::I8Kernels& ks, ThreadPool& pool, const float* x, int64_t T, int64_t ldx,
            const quant::Nvfp4Matrix& w, float* y, int64_t ldy, bool accumulate) {
  using namespace detail;
  const int64_t N = w.rows, K = w.cols, ldq = K, ldxs = K / 16;
  const int64_t ldxd = i8_direct_row_bytes(K);
  // Per calling thread, reused across calls (a decode step makes hundreds); 64-byte aligned.
  thread_local std::vector<uint8_t> buf;
  const size_t need = static_cast<size_t>(T * (ldxd + 4 * ldxs + ldq) + 64);
  if (buf.size() < need) buf.resize(need);
  const auto addr = reinterpret_cast<uintptr_t>(buf.data());
  uint8_t* xd = buf.data() + (64 - addr % 64) % 64;         // T * ldxd bytes (ldxd % 128 == 0)
  auto* xs = reinterpret_cast<float*>(xd + T * ldxd);       // T * ldxs floats, 64-byte aligned
  uint8_t* xq = reinterpret_cast<uint8_t*>(xs + T * ldxs);  // T * ldq bytes
  ks.quantize(x, T, ldx, K, xq, ldq, xs, ldxs);
  arrange_i8_direct(xq, ldq, xs, ldxs, T, K, xd, ldxd);
  constexpr int64_t kNr = kI8DirectNR, kMr = kI8DirectMR;
  // Less than this many weight bytes per thread is not worth waking a thread for.
  constexpr int64_t kMinBytesPerThread = int64_t{1} << 15;
  const int64_t threads =
      std::clamp<int64_t>(T * N * K / 2 / kMinBytesPerThread, 1, static_cast<int64_t>(pool.size()));
  const int64_t per = (N + threads - 1) / threads;
  const int64_t grain = (per + kNr - 1) / kNr * kNr;
  pool.parallel_for(N, grain, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; n += kNr) {
      const int nr = static_cast<int>(std::min(kNr, n1 - n));
      for (int64_t t = 0; t < T; t += kMr) {
        const int mr = static_cast<int>(std::min(kMr, T - t));
        ks.direct[mr - 1][nr - 1](xd + t * ldxd, ldxd, w.packed + n * w.ld, w.ld,
                                  w.scales + n * w.scale_ld, w.scale_ld, K, w.global_scale,
                                  y + t * ldy + n, ldy, accumulate);
      }
    }
  });
}

}  // namespace

bool nvfp4_i8_fast() {
  return matmul_isa_supported(MatmulIsa::kAvx2);
}

void nvfp4_matmul_i8(ThreadPool& pool, const float* x, int64_t T, int64_t ldx,
                     const quant::Nvfp4Matrix& w, float* y, int64_t ldy, bool accumulate,
                     MatmulPath path) {
  using namespace detail;
  check_args(x, T, ldx, w, y, ldy);
  if (T == 0 || w.rows == 0) return;
  const int64_t N = w.rows, K = w.cols;
  if (K == 0) {
    if (!accumulate) {
      for (int64_t t = 0; t < T; ++t) std::fill_n(y + t * ldy, N, 0.0f);
    }
    return;
  }
  static const I8Kernels avx2 = nvfp4_i8_fast() ? i8_kernels_avx2() : I8Kernels{};
  static const I8Kernels scalar = i8_kernels_scalar();
  const I8Kernels& ks = avx2.tile ? avx2 : scalar;

  const int64_t ldq = K, ldxs = K / 16;
  if (path == MatmulPath::kAuto)
    path = T <= kI8DirectMaxT ? MatmulPath::kDirect : MatmulPath::kBlocked;
  if (path == MatmulPath::kDirect && ks.direct[0][0]) {
    direct(ks, pool, x, T, ldx, w, y, ldy, accumulate);
    return;
  }
  // Quantized activations: per call (one prefill step per call; kilobytes per row).
  const Aligned<uint8_t> xq(T * ldq);
  const Aligned<float> xs(T * ldxs);
  pool.parallel_for(T, std::max<int64_t>(1, 8192 / K), [&](int64_t b, int64_t e, int) {
    ks.quantize(x + b * ldx, e - b, ldx, K, xq.p + b * ldq, ldq, xs.p + b * ldxs, ldxs);
  });

  const detail::BlockedSplit sp =
      detail::split_blocked(T, N, K, kPanelRows, kI8TileRows, kKc, 16, pool.size());
  const int64_t kblock = sp.kblock, mr = kI8TileRows;
  const int64_t panel_bytes = kPanelRows / kI8PanelRows * (kblock / 16) * kI8BlockBytes;

  pool.parallel_for(sp.tasks, sp.grain, [&](int64_t tb, int64_t te, int) {
    const Aligned<uint8_t> packed(panel_bytes);
    sp.for_runs(tb, te, [&](int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
      const int64_t rows = n1 - n0;
      for (int64_t kb = 0; kb < K; kb += kblock) {
        const int64_t kc = std::min(kblock, K - kb), blocks = kc / 16;
        ks.pack(w.packed + n0 * w.ld, w.ld, w.scales + n0 * w.scale_ld, w.scale_ld, rows, kb, kc,
                w.global_scale, packed.p);
        const bool add = accumulate || kb > 0;
        for (int64_t mb = t0; mb < t1; mb += kMcRows) {
          const int64_t me = std::min(t1, mb + kMcRows);
          for (int64_t r = 0; r < rows; r += kI8PanelRows) {
            const uint8_t* pp = packed.p + r / kI8PanelRows * blocks * kI8BlockBytes;
            const int nr = static_cast<int>(std::min<int64_t>(kI8PanelRows, rows - r));
            for (int64_t t = mb; t < me; t += mr) {
              ks.tile(xq.p + t * ldq + kb, ldq, xs.p + t * ldxs + kb / 16, ldxs, pp, blocks,
                      y + t * ldy + n0 + r, ldy, static_cast<int>(std::min(mr, me - t)), nr, add);
            }
          }
        }
      }
    });
  });
}

void nvfp4_matmul_i8_ref(const float* x, int64_t T, int64_t ldx, const quant::Nvfp4Matrix& w,
                         float* y, int64_t ldy, bool accumulate) {
  check_args(x, T, ldx, w, y, ldy);
  const int64_t K = w.cols;
  const float* e4m3 = quant::e4m3_table();
  std::vector<uint8_t> xq(static_cast<size_t>(K));
  std::vector<float> xs(static_cast<size_t>(K / 16));
  for (int64_t t = 0; t < T; ++t) {
    detail::quantize_row_i8(x + t * ldx, K, xq.data(), xs.data());
    for (int64_t n = 0; n < w.rows; ++n) {
      float acc = 0.0f;
      for (int64_t b = 0; b < K / 16; ++b) {
        int32_t s = 0;
        for (int64_t k = 16 * b; k < 16 * b + 16; ++k) {
          s += (static_cast<int32_t>(xq[static_cast<size_t>(k)]) - 128) * detail::code_at(w, n, k);
        }
        const float wsc = e4m3[w.scales[n * w.scale_ld + b]] * w.global_scale;
        acc = std::fma(static_cast<float>(s), wsc * xs[static_cast<size_t>(b)], acc);
      }
      y[t * ldy + n] = accumulate ? y[t * ldy + n] + acc : acc;
    }
  }
}

}  // namespace fc::cpu
