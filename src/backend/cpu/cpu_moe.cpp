// CpuBackend::moe_experts (backend.h): the routed experts of a Gemma 4 MoE block.
//
// Steps of several tokens spread whole experts over the pool's threads, each expert's gate / up /
// down matmuls running on its thread alone (a one-thread pool runs inline), instead of one expert
// after the other with every small matmul split over all threads (what one-token steps do, below):
// a prefill of T tokens gives each of
// the 128 experts about 8·T/128 rows, so the per-matmul thread hand-offs (3 per expert) and the
// idle ends of tiny parallel loops were most of the MoE time. Every output row is computed by
// the same kernels in the same order as before (matmul results do not depend on the thread
// count), and each token's expert outputs are still added in ascending expert id, so the
// result is unchanged bit for bit (for steps of up to kChunk tokens; longer ones are done in
// passes of kChunk tokens, which changes how many rows each expert's matmuls get).
#include <algorithm>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/fast_math.h"

namespace fc::cpu {

namespace {
// Tokens per pass: the expert outputs of a pass are held per slot (kChunk · k · H floats, 23 MB
// for 26B-A4B), so a long prefill step is done in passes of this many tokens.
constexpr int64_t kChunk = 256;
}  // namespace

void CpuBackend::moe_experts(const float* x, int64_t ldx, int64_t T, const int32_t* idx,
                             const float* weights, int k, const Weight* gate, const Weight* up,
                             const Weight* down, int E, float* out, int64_t ldo) {
  for (int64_t t0 = 0; t0 < T; t0 += kChunk) {
    const int64_t n = std::min(kChunk, T - t0);
    moe_chunk(x + t0 * ldx, ldx, n, idx + t0 * k, weights + t0 * k, k, gate, up, down, E,
              out + t0 * ldo, ldo);
  }
}

void CpuBackend::moe_chunk(const float* x, int64_t ldx, int64_t T, const int32_t* idx,
                           const float* weights, int k, const Weight* gate, const Weight* up,
                           const Weight* down, int E, float* out, int64_t ldo) {
  const int64_t H = gate[0].cols, inter = gate[0].rows;
  // Rows (token · k + j slots) of each expert, in token order.
  std::vector<std::vector<int64_t>> slots(static_cast<size_t>(E));
  for (int64_t s = 0; s < T * k; ++s) {
    const int32_t e = idx[s];
    if (e >= 0 && e < E) slots[static_cast<size_t>(e)].push_back(s);
  }
  std::vector<int> active;
  for (int e = 0; e < E; ++e)
    if (!slots[static_cast<size_t>(e)].empty()) active.push_back(e);
  // Largest experts first and last in turn, so that the contiguous ranges parallel_for hands
  // the threads hold about the same number of rows.
  std::vector<int> by_rows = active;
  std::stable_sort(by_rows.begin(), by_rows.end(), [&](int a, int b) {
    return slots[static_cast<size_t>(a)].size() > slots[static_cast<size_t>(b)].size();
  });
  std::vector<int> order;
  order.reserve(by_rows.size());
  for (size_t f = 0, l = by_rows.size(); f < l; ++f) {
    order.push_back(by_rows[f]);
    if (f + 1 < l) order.push_back(by_rows[--l]);
  }
  // Expert outputs per slot: ys[s * H ..] = Expert_{idx[s]}(x[s / k]).
  std::vector<float> ys(static_cast<size_t>(T * k * H));
  // A one-token step (decode): every expert has one row, so one expert after the other with each
  // matmul split over all threads, which streams the ~1 MB expert matrices faster than one expert
  // per thread (26B-A4B decode on the Xeon of docs/benchmarks.md: moe_experts 43-48 → 39 ms per
  // token). Results are the same either way (a matmul's rows do not depend on its thread count).
  const bool split = T == 1;
  const auto run = [&](ThreadPool& mm_pool, int64_t b, int64_t e) {
    std::vector<float> xs, gu, act, y, scratch;
    for (int64_t i = b; i < e; ++i) {
      const int ex = order[static_cast<size_t>(i)];
      const std::vector<int64_t>& rows = slots[static_cast<size_t>(ex)];
      const int64_t n = static_cast<int64_t>(rows.size());
      xs.resize(static_cast<size_t>(n * H));
      for (int64_t r = 0; r < n; ++r) {
        const float* src = x + rows[static_cast<size_t>(r)] / k * ldx;
        std::copy(src, src + H, xs.data() + r * H);
      }
      gu.resize(static_cast<size_t>(n * 2 * inter));
      linear_on(mm_pool, scratch, xs.data(), n, H, gate[ex], gu.data(), 2 * inter, false);
      linear_on(mm_pool, scratch, xs.data(), n, H, up[ex], gu.data() + inter, 2 * inter, false);
      act.resize(static_cast<size_t>(n * inter));
      for (int64_t r = 0; r < n; ++r) {
        gelu_mul_row(gu.data() + r * 2 * inter, gu.data() + r * 2 * inter + inter,
                     act.data() + r * inter, inter);
      }
      y.resize(static_cast<size_t>(n * H));
      linear_on(mm_pool, scratch, act.data(), n, inter, down[ex], y.data(), H, false);
      for (int64_t r = 0; r < n; ++r) {
        std::copy(y.data() + r * H, y.data() + (r + 1) * H,
                  ys.data() + rows[static_cast<size_t>(r)] * H);
      }
    }
  };
  if (split) {
    run(pool_, 0, static_cast<int64_t>(order.size()));
  } else {
    pool_.parallel_for(static_cast<int64_t>(order.size()), 1, [&](int64_t b, int64_t e, int) {
      ThreadPool solo(1);  // no worker threads: parallel_for runs inline on this thread
      run(solo, b, e);
    });
  }
  // out[t] = Σ_j weights[t, j] · ys[t, j], the j taken in ascending expert id (HF's index_add
  // loop over experts); tokens split over the threads.
  pool_.parallel_for(T, 1, [&](int64_t b, int64_t e, int) {
    std::vector<int> js(static_cast<size_t>(k));
    for (int64_t t = b; t < e; ++t) {
      float* o = out + t * ldo;
      std::fill(o, o + H, 0.0f);
      std::iota(js.begin(), js.end(), 0);
      std::stable_sort(js.begin(), js.end(),
                       [&](int a, int c) { return idx[t * k + a] < idx[t * k + c]; });
      for (int j : js) {
        const int32_t ex = idx[t * k + j];
        if (ex < 0 || ex >= E) continue;
        const float wr = weights[t * k + j];
        const float* yr = ys.data() + (t * k + j) * H;
        for (int64_t i = 0; i < H; ++i) o[i] += yr[i] * wr;
      }
    }
  });
}

}  // namespace fc::cpu
