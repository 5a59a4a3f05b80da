// matmul (every kernel family this CPU supports, pools of 1-3 threads) against matmul_ref at
// awkward shapes, strides, alignments and weight dtypes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/matmul.h"
#include "core/error.h"
#include "core/half.h"

namespace fc::cpu {
namespace {

constexpr float kPad = 12345.0f;  // sentinel in output padding that matmul must not touch

std::vector<MatmulIsa> supported_isas() {
  std::vector<MatmulIsa> out;
  for (MatmulIsa i : {MatmulIsa::kAmx, MatmulIsa::kAvx512, MatmulIsa::kAvx2, MatmulIsa::kScalar}) {
    if (matmul_isa_supported(i)) out.push_back(i);
  }
  return out;
}

const char* isa_name(MatmulIsa i) {
  switch (i) {
    case MatmulIsa::kAmx:
      return "amx-bf16";
    case MatmulIsa::kAvx512:
      return "avx512";
    case MatmulIsa::kAvx2:
      return "avx2";
    case MatmulIsa::kScalar:
      return "scalar";
    default:
      return "auto";
  }
}

const char* path_name(MatmulPath p) {
  switch (p) {
    case MatmulPath::kDirect:
      return "direct";
    case MatmulPath::kBlocked:
      return "blocked";
    default:
      return "auto";
  }
}

// A weight matrix W[N, K] (row stride ld) in `dtype`, stored `offset` elements into its buffer
// so the data pointer can be misaligned. `widened` holds the fp32 value of every element.
struct Weights {
  DType dtype;
  int64_t N, K, ld;
  std::vector<unsigned char> bytes;
  std::vector<float> widened;  // [N, ld]
  int64_t offset;

  MatView view() const {
    const int64_t es = dtype == DType::kF32 ? 4 : 2;
    return MatView{bytes.data() + offset * es, dtype, N, K, ld};
  }
};

Weights make_weights(DType dt, int64_t N, int64_t K, int64_t ld, int64_t offset,
                     std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Weights w{dt, N, K, ld, {}, std::vector<float>(static_cast<size_t>(N * ld + 1)), offset};
  const int64_t es = dt == DType::kF32 ? 4 : 2;
  w.bytes.resize(static_cast<size_t>((N * ld + offset + 1) * es));
  for (int64_t i = 0; i < N * ld; ++i) {
    const float v = u(rng);
    unsigned char* dst = w.bytes.data() + (offset + i) * es;
    if (dt == DType::kF32) {
      std::memcpy(dst, &v, 4);
      w.widened[i] = v;
    } else {
      const uint16_t h = dt == DType::kBF16 ? f32_to_bf16(v) : f32_to_f16(v);
      std::memcpy(dst, &h, 2);
      w.widened[i] = dt == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  }
  return w;
}

std::vector<float> random_floats(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& f : v) f = u(rng);
  return v;
}

// Checks y against yref elementwise with a tolerance relative to sum_k |x||w| (+|y0|): both are
// fp32 sums of the same products in different orders, each off by at most ~K ulps of that scale.
void expect_close(const float* y, const float* yref, const float* x, const Weights& w,
                  const float* y0, int64_t T, int64_t ldx, int64_t ldy, const std::string& what) {
  int bad = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t n = 0; n < w.N; ++n) {
      double scale = y0 ? std::fabs(y0[t * ldy + n]) : 0.0;
      for (int64_t k = 0; k < w.K; ++k) {
        scale += std::fabs(x[t * ldx + k] * w.widened[n * w.ld + k]);
      }
      const double tol = (w.K + 2) * 1.2e-7 * scale + 1e-30;
      const double err = std::fabs(static_cast<double>(y[t * ldy + n]) - yref[t * ldy + n]);
      if (!(err <= tol) && ++bad <= 3) {
        ADD_FAILURE() << what << " t=" << t << " n=" << n << " got " << y[t * ldy + n] << " want "
                      << yref[t * ldy + n] << " tol " << tol;
      }
    }
    for (int64_t n = w.N; n < ldy; ++n) {
      if (y[t * ldy + n] != kPad && ++bad <= 3) ADD_FAILURE() << what << " wrote padding";
    }
  }
}

struct Case {
  DType dt;
  int64_t T, K, N;
  bool pad;       // ld, ldx, ldy larger than the logical row length
  bool misalign;  // x and W data pointers one element past an aligned allocation
  bool accumulate;
};

std::string describe(const Case& c) {
  return std::string(dtype_name(c.dt)) + " T=" + std::to_string(c.T) + " K=" + std::to_string(c.K) +
         " N=" + std::to_string(c.N) + (c.pad ? " pad" : "") + (c.misalign ? " misaligned" : "") +
         (c.accumulate ? " acc" : "");
}

// Runs case c through matmul_ref once and through every ISA × pool, comparing.
void check_case(const Case& c, const std::vector<ThreadPool*>& pools, std::mt19937& rng) {
  const int64_t ld = c.K + (c.pad ? 5 : 0), ldx = c.K + (c.pad ? 3 : 0);
  const int64_t ldy = c.N + (c.pad ? 2 : 0);
  const int64_t off = c.misalign ? 1 : 0;
  const Weights w = make_weights(c.dt, c.N, c.K, ld, off, rng);
  std::vector<float> xbuf = random_floats(static_cast<size_t>(c.T * ldx + 1), rng);
  const float* x = xbuf.data() + off;
  std::vector<float> y0(static_cast<size_t>(c.T * ldy), kPad);
  if (c.accumulate) {
    const std::vector<float> r = random_floats(y0.size(), rng);
    for (int64_t t = 0; t < c.T; ++t) {
      for (int64_t n = 0; n < c.N; ++n) y0[t * ldy + n] = r[t * ldy + n];
    }
  }
  std::vector<float> yref = y0;
  matmul_ref(x, c.T, ldx, w.view(), yref.data(), ldy, c.accumulate);
  // kAuto is one of the two, so forcing each covers every loop structure at every shape.
  for (MatmulIsa isa : supported_isas()) {
    for (MatmulPath path : {MatmulPath::kDirect, MatmulPath::kBlocked}) {
      for (ThreadPool* pool : pools) {
        // The slow scalar kernels share the threading code: one pool is enough for them.
        if (isa == MatmulIsa::kScalar && pool != pools.front()) continue;
        std::vector<float> y = y0;
        matmul_with_isa(isa, *pool, x, c.T, ldx, w.view(), y.data(), ldy, c.accumulate, path);
        expect_close(y.data(), yref.data(), x, w, c.accumulate ? y0.data() : nullptr, c.T, ldx, ldy,
                     describe(c) + " isa=" + isa_name(isa) + " path=" + path_name(path) +
                         " threads=" + std::to_string(pool->size()));
      }
    }
  }
}

TEST(Matmul, IsaNameIsKnown) {
  const std::string isa = matmul_isa();
  EXPECT_TRUE(isa == "amx-bf16" || isa == "avx512" || isa == "avx2" || isa == "scalar") << isa;
  EXPECT_TRUE(matmul_isa_supported(MatmulIsa::kScalar));
}

TEST(Matmul, AwkwardShapesMatchReference) {
  ThreadPool p1(1), p2(2), p3(3);
  const std::vector<ThreadPool*> pools = {&p1, &p2, &p3};
  std::mt19937 rng(1234);
  int variant = 0;
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (int64_t T : {1, 2, 3, 5, 17, 67}) {
      for (int64_t K : {1, 7, 16, 33, 100, 257}) {
        for (int64_t N : {1, 3, 17, 64, 131}) {
          // Rotate through the 8 stride/alignment/accumulate combinations.
          const int v = variant++;
          check_case({dt, T, K, N, (v & 1) != 0, (v & 2) != 0, (v & 4) != 0}, pools, rng);
        }
      }
    }
  }
}

TEST(Matmul, EveryLayoutVariant) {
  ThreadPool p1(1), p3(3);
  const std::vector<ThreadPool*> pools = {&p1, &p3};
  std::mt19937 rng(99);
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (int v = 0; v < 8; ++v) {
      for (int64_t T : {1, 6, 23})
        check_case({dt, T, 45, 29, (v & 1) != 0, (v & 2) != 0, (v & 4) != 0}, pools, rng);
    }
  }
}

TEST(Matmul, ThreadedAndKBlockedShapes) {
  // Big enough to use several threads, several K blocks (K > 512, with K-block tails) and the
  // activation split of the blocked path (fewer weight panels than threads).
  ThreadPool p2(2), p3(3);
  const std::vector<ThreadPool*> pools = {&p2, &p3};
  std::mt19937 rng(7);
  check_case({DType::kBF16, 1, 700, 1001, false, true, false}, pools, rng);
  check_case({DType::kBF16, 8, 300, 999, true, false, true}, pools, rng);
  check_case({DType::kF16, 40, 2100, 45, false, false, false}, pools, rng);
  check_case({DType::kF32, 33, 1030, 70, true, true, true}, pools, rng);
  check_case({DType::kBF16, 130, 200, 20, false, true, false}, pools, rng);
  check_case({DType::kBF16, 67, 2001, 50, true, true, false}, pools, rng);  // auto: blocked
}

TEST(Matmul, PackedPanelTileAndBlockEdges) {
  // The blocked path's packed-panel GEMM (gemm_packed.h): T around its register tile (6 rows on
  // AVX2, 4 scalar) and its 120-row activation blocks, N around its micro-panels (16 / 8 rows)
  // and 64-row panels, K around its 256-column blocks (257: two blocks of 136 and 121).
  ThreadPool p1(1), p2(2);
  const std::vector<ThreadPool*> pools = {&p1, &p2};
  std::mt19937 rng(17);
  int variant = 0;
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (int64_t T : {6, 7, 119, 121}) {
      for (int64_t K : {8, 257, 520}) {
        for (int64_t N : {15, 16, 65}) {
          const int v = variant++;
          check_case({dt, T, K, N, (v & 1) != 0, (v & 2) != 0, (v & 4) != 0}, pools, rng);
        }
      }
    }
  }
}

// 16-bit weights must be widened exactly (never rounded through another format): the result must
// equal, bit for bit, the result for an fp32 copy of the widened values, since both go through
// the same kernels in the same order.
TEST(Matmul, HalfWeightsReadExactly) {
  ThreadPool pool(2);
  std::mt19937 rng(5);
  for (DType dt : {DType::kBF16, DType::kF16}) {
    for (int64_t T : {1, 3, 37}) {
      const int64_t N = 70, K = 129;
      const Weights w = make_weights(dt, N, K, K, 1, rng);
      Weights w32{DType::kF32, N, K, K, std::vector<unsigned char>(w.widened.size() * 4),
                  w.widened,   0};
      std::memcpy(w32.bytes.data(), w.widened.data(), w32.bytes.size());
      const std::vector<float> x = random_floats(static_cast<size_t>(T * K), rng);
      for (MatmulIsa isa : supported_isas()) {
        // kAmx multiplies BF16 weights on its own tiles (F32 and F16 ones go to kAvx512's): the
        // bit-for-bit comparison is for the widening kernels; its precision is checked above.
        if (isa == MatmulIsa::kAmx) continue;
        for (MatmulPath path : {MatmulPath::kDirect, MatmulPath::kBlocked}) {
          std::vector<float> y16(static_cast<size_t>(T * N)), y32(y16.size()), yref(y16.size());
          matmul_with_isa(isa, pool, x.data(), T, K, w.view(), y16.data(), N, false, path);
          matmul_with_isa(isa, pool, x.data(), T, K, w32.view(), y32.data(), N, false, path);
          matmul_ref(x.data(), T, K, w32.view(), yref.data(), N);
          for (size_t i = 0; i < y16.size(); ++i) {
            ASSERT_EQ(y16[i], y32[i])
                << dtype_name(dt) << " " << isa_name(isa) << " " << path_name(path) << " T=" << T;
          }
          expect_close(y16.data(), yref.data(), x.data(), w, nullptr, T, K, N, "vs fp32 copy");
        }
      }
    }
  }
}

TEST(Matmul, EmptyK) {
  ThreadPool pool(2);
  const uint16_t dummy = 0;
  const MatView w{&dummy, DType::kBF16, 3, 0, 0};
  const float x = 1.0f;
  std::vector<float> y(6, 5.0f);
  matmul(pool, &x, 2, 0, w, y.data(), 3, /*accumulate=*/true);
  EXPECT_EQ(y, std::vector<float>(6, 5.0f));
  matmul(pool, &x, 2, 0, w, y.data(), 3);
  EXPECT_EQ(y, std::vector<float>(6, 0.0f));
  std::vector<float> yr(6, 5.0f);
  matmul_ref(&x, 2, 0, w, yr.data(), 3);
  EXPECT_EQ(yr, std::vector<float>(6, 0.0f));
}

TEST(Matmul, RejectsBadArguments) {
  ThreadPool pool(1);
  std::vector<float> buf(64, 1.0f), y(64);
  EXPECT_THROW(
      matmul(pool, buf.data(), 1, 8, MatView{buf.data(), DType::kI8, 2, 8, 8}, y.data(), 2), Error);
  EXPECT_THROW(
      matmul(pool, buf.data(), 1, 8, MatView{buf.data(), DType::kF32, 2, 8, 4}, y.data(), 2),
      Error);
  EXPECT_THROW(
      matmul(pool, buf.data(), 2, 4, MatView{buf.data(), DType::kF32, 2, 8, 8}, y.data(), 2),
      Error);
}

// Calls from different pools at the same time must not interfere (no shared scratch).
TEST(Matmul, ConcurrentCallsFromTwoPools) {
  std::mt19937 rng(11);
  const int64_t N = 96, K = 200;
  const Weights w = make_weights(DType::kBF16, N, K, K, 0, rng);
  struct Job {
    int64_t T;
    std::vector<float> x, want, got;
  };
  std::vector<Job> jobs;
  for (int64_t T : {2, 50}) {
    Job j{T, random_floats(static_cast<size_t>(T * K), rng), {}, {}};
    j.want.resize(static_cast<size_t>(T * N));
    ThreadPool solo(1);
    matmul(solo, j.x.data(), T, K, w.view(), j.want.data(), N);
    jobs.push_back(std::move(j));
  }
  std::vector<std::thread> threads;
  for (Job& j : jobs) {
    threads.emplace_back([&w, &j] {
      ThreadPool pool(2);
      std::vector<float> y(j.want.size());
      for (int rep = 0; rep < 30; ++rep) {
        matmul(pool, j.x.data(), j.T, K, w.view(), y.data(), N);
        if (y != j.want) {
          j.got = y;
          return;
        }
      }
      j.got = y;
    });
  }
  for (auto& t : threads) t.join();
  // Thread count does not change any single output's summation order, so results are exact.
  for (const Job& j : jobs) EXPECT_EQ(j.got, j.want) << "T=" << j.T;
}

}  // namespace
}  // namespace fc::cpu
