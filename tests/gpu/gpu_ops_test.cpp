// Every CudaBackend op against the CPU backend at awkward sizes: 1 and 17 rows, odd widths,
// row strides larger than the width (padding must stay untouched), in-place calls, every dtype.
// Skipped (exit 0) without a GPU.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <tuple>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "gpu_test_util.h"
#include "quant/nvfp4.h"

namespace fc::gputest {
namespace {

constexpr float kPad = 12345.0f;  // poison in the padding columns of strided buffers

class GpuOps : public ::testing::Test {
 public:
  void SetUp() override {
    FC_REQUIRE_GPU();
    pool = std::make_unique<ThreadPool>(2);
    cpu = std::make_unique<cpu::CpuBackend>(*pool);
    gpu = std::make_unique<cuda::CudaBackend>();
  }
  // [rows, n] random values in a [rows, ld] buffer, padding poisoned.
  static std::vector<float> strided(int64_t rows, int64_t n, int64_t ld, uint32_t seed) {
    std::vector<float> v(static_cast<size_t>(rows * ld), kPad);
    const std::vector<float> r = randn(static_cast<size_t>(rows * n), seed);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n; ++j) v[i * ld + j] = r[i * n + j];
    return v;
  }
  // Compares the [rows, n] region (tolerance relative to max |want|) and that the padding of got
  // still holds the poison.
  static void expect_strided(const std::vector<float>& got, const std::vector<float>& want,
                             int64_t rows, int64_t n, int64_t ld, double tol,
                             const std::string& what) {
    std::vector<float> g, w;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < ld; ++j) {
        if (j < n) {
          g.push_back(got[i * ld + j]);
          w.push_back(want[i * ld + j]);
        } else {
          ASSERT_EQ(got[i * ld + j], kPad) << what << ": padding written at " << i << "," << j;
        }
      }
    EXPECT_LE(rel_err(g.data(), w.data(), g.size()), tol) << what;
  }
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<cpu::CpuBackend> cpu;
  std::unique_ptr<cuda::CudaBackend> gpu;
};

// A host weight [rows, cols] (row stride ld) of dtype dt with random values; storage kept alive.
struct HostWeight {
  std::vector<uint8_t> bytes;
  Weight w;
  HostWeight(int64_t rows, int64_t cols, int64_t ld, DType dt, uint32_t seed, float scale = 0.1f) {
    const std::vector<float> v = randn(static_cast<size_t>(rows * ld), seed, scale);
    const size_t esz = static_cast<size_t>(dtype_bits(dt) / 8);
    bytes.resize(v.size() * esz);
    for (size_t i = 0; i < v.size(); ++i) {
      if (dt == DType::kF32) std::memcpy(&bytes[i * 4], &v[i], 4);
      const uint16_t h = dt == DType::kBF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
      if (dt != DType::kF32) std::memcpy(&bytes[i * 2], &h, 2);
    }
    w.data = bytes.data();
    w.dtype = dt;
    w.rows = rows;
    w.cols = cols;
    w.ld = ld;
    w.name = "test.weight";
  }
};

TEST_F(GpuOps, RmsNorm) {
  for (int64_t rows : {1, 17})
    for (int64_t n : {1, 7, 1000})
      for (DType dt : {DType::kF32, DType::kBF16, DType::kF16})
        for (bool with_w : {true, false}) {
          const int64_t ld = n + 3;
          HostWeight hw(1, n, n, dt, 5);
          const Weight dw = gpu->upload(hw.w);
          std::vector<float> x = strided(rows, n, ld, 1), want = x;
          cpu->rmsnorm(x.data(), rows, n, ld, with_w ? &hw.w : nullptr, 1e-6f, want.data(), ld);
          DevBuf<float> d(*gpu, x);
          gpu->rmsnorm(d.p, rows, n, ld, with_w ? &dw : nullptr, 1e-6f, d.p, ld);  // in place
          expect_strided(d.host(), want, rows, n, ld, 2e-6, "rmsnorm");
        }
}

TEST_F(GpuOps, Rope) {
  for (int64_t T : {1, 17})
    for (int D : {2, 6, 256, 512}) {
      const int heads = 3;
      const int64_t ld = heads * D + 5;
      std::vector<float> x = strided(T, heads * D, ld, 2), want = x;
      std::vector<int32_t> pos(static_cast<size_t>(T));
      for (int64_t t = 0; t < T; ++t)
        pos[static_cast<size_t>(t)] = static_cast<int32_t>(t * 977 % 100003);
      std::vector<float> inv(static_cast<size_t>(D / 2));
      for (int j = 0; j < D / 2; ++j)  // proportional RoPE: a zero-frequency tail
        inv[static_cast<size_t>(j)] = j < D / 4 + 1 ? std::pow(10000.0f, -2.0f * j / D) : 0.0f;
      cpu->rope(want.data(), T, ld, heads, D, pos.data(), inv.data());
      DevBuf<float> dx(*gpu, x);
      DevBuf<int32_t> dp(*gpu, pos);
      DevBuf<float> di(*gpu, inv);
      gpu->rope(dx.p, T, ld, heads, D, dp.p, di.p);
      expect_strided(dx.host(), want, T, heads * D, ld, 2e-6, "rope D=" + std::to_string(D));
    }
}

TEST_F(GpuOps, ElementwiseOps) {
  for (int64_t T : {1, 17})
    for (int64_t n : {1, 33, 4097}) {
      const int64_t ld = n + 1;
      const std::vector<float> a = strided(T, n, ld, 3), b = strided(T, n, ld, 4);
      DevBuf<float> da(*gpu, a), db(*gpu, b);
      for (int op = 0; op < 5; ++op) {
        std::vector<float> want = a;
        DevBuf<float> dy(*gpu, a);
        if (op == 0) {
          cpu->gelu_mul(a.data(), ld, b.data(), ld, T, n, want.data(), ld);
          gpu->gelu_mul(da.p, ld, db.p, ld, T, n, dy.p, ld);
        } else if (op == 1) {
          cpu->silu_mul(a.data(), ld, b.data(), ld, T, n, want.data(), ld);
          gpu->silu_mul(da.p, ld, db.p, ld, T, n, dy.p, ld);
        } else if (op == 2) {
          cpu->add(a.data(), ld, b.data(), ld, T, n, want.data(), ld);
          gpu->add(da.p, ld, db.p, ld, T, n, dy.p, ld);
        } else if (op == 3) {
          cpu->scale(want.data(), ld, T, n, 0.37f);
          gpu->scale(dy.p, ld, T, n, 0.37f);
        } else {
          std::vector<float> big = a;
          for (float& v : big) v = v == kPad ? kPad : v * 40.0f;
          want = big;
          dy.be->to_device(dy.p, big.data(), big.size() * 4);
          cpu->softcap(want.data(), ld, T, n, 30.0f);
          gpu->softcap(dy.p, ld, T, n, 30.0f);
        }
        expect_strided(dy.host(), want, T, n, ld, 2e-6, "elementwise op " + std::to_string(op));
      }
    }
}

TEST_F(GpuOps, EmbedAllDtypesAndBadIds) {
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF16}) {
    HostWeight hw(37, 13, 15, dt, 6);
    const Weight dw = gpu->upload(hw.w);
    const std::vector<int32_t> ids = {0, 36, 5, 5, 17};
    const int64_t T = static_cast<int64_t>(ids.size()), ldo = 16;
    std::vector<float> want(static_cast<size_t>(T * ldo), kPad);
    cpu->embed(hw.w, ids.data(), T, 1.7f, want.data(), ldo);
    DevBuf<int32_t> di(*gpu, ids);
    DevBuf<float> dout(*gpu, std::vector<float>(static_cast<size_t>(T * ldo), kPad));
    gpu->embed(dw, di.p, T, 1.7f, dout.p, ldo);
    GpuOps::expect_strided(dout.host(), want, T, 13, ldo, 0.0, "embed");
    DevBuf<int32_t> bad(*gpu, std::vector<int32_t>{3, 37});
    gpu->embed(dw, bad.p, 2, 1.0f, dout.p, ldo);
    EXPECT_THROW(dout.host(), Error);  // reported at the next synchronisation
  }
}

TEST_F(GpuOps, KvWriteAllDtypesBitExact) {
  const int64_t T = 17, row = 3 * 40 + 1, ldk = row + 2, ldv = row + 5, slots_n = 32;
  std::vector<float> k = strided(T, row, ldk, 7), v = strided(T, row, ldv, 8);
  for (float& x : k) x = x == kPad ? kPad : x * 100.0f;  // some saturate in FP8
  std::vector<int32_t> slots(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t)
    slots[static_cast<size_t>(t)] = t == 3 ? -1 : static_cast<int32_t>((t * 7) % slots_n);
  DevBuf<float> dk(*gpu, k), dv(*gpu, v);
  DevBuf<int32_t> ds(*gpu, slots);
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF8_E4M3}) {
    const size_t bytes = static_cast<size_t>(slots_n * row * dtype_bits(dt) / 8);
    std::vector<uint8_t> kc(bytes, 0xAB), vc(bytes, 0xCD);
    std::vector<uint8_t> gkc = kc, gvc = vc;
    cpu->kv_write(k.data(), ldk, v.data(), ldv, T, row, slots.data(), kc.data(), vc.data(), dt,
                  0.5f, 0.03f);
    DevBuf<uint8_t> dkc(*gpu, gkc), dvc(*gpu, gvc);
    gpu->kv_write(dk.p, ldk, dv.p, ldv, T, row, ds.p, dkc.p, dvc.p, dt, 0.5f, 0.03f);
    EXPECT_EQ(dkc.host(), kc) << dtype_name(dt);
    EXPECT_EQ(dvc.host(), vc) << dtype_name(dt);
  }
}

struct AttnCase {
  int heads, kv_heads, D, block, window;
  std::vector<int> n_q, pos0;
};

// Fills paged caches through the CPU kv_write (both backends read the same bytes, blocks
// scattered), runs one attention call on each backend and compares. hint_q / hint_keys are the
// AttentionArgs kernel hints (max_q_per_seq, max_keys); results must not depend on them.
void check_attention(cpu::CpuBackend* cpu, cuda::CudaBackend* gpu, const AttnCase& c, DType dt,
                     std::mt19937& g, int hint_q, int hint_keys, const std::string& what) {
  const int n_seqs = static_cast<int>(c.n_q.size());
  const int64_t row = int64_t{c.kv_heads} * c.D;
  std::vector<int32_t> qb, nq(c.n_q.begin(), c.n_q.end()), p0(c.pos0.begin(), c.pos0.end());
  std::vector<int32_t> tables, toff, slots;
  int total_blocks = 0;
  std::vector<std::vector<int32_t>> per_seq;
  for (int s = 0; s < n_seqs; ++s) {
    const int len = c.pos0[s] + c.n_q[s], nb = (len + c.block - 1) / c.block;
    per_seq.emplace_back();
    for (int b = 0; b < nb; ++b) per_seq.back().push_back(total_blocks++);
  }
  std::vector<int32_t> perm(static_cast<size_t>(total_blocks));  // scatter blocks
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), g);
  int64_t T = 0, ctx_rows = 0;
  for (int s = 0; s < n_seqs; ++s) {
    qb.push_back(static_cast<int32_t>(T));
    T += c.n_q[s];
    toff.push_back(static_cast<int32_t>(tables.size()));
    for (int32_t b : per_seq[static_cast<size_t>(s)])
      tables.push_back(perm[static_cast<size_t>(b)]);
    for (int p = 0; p < c.pos0[s] + c.n_q[s]; ++p) {
      const int32_t blk = tables[static_cast<size_t>(toff.back() + p / c.block)];
      slots.push_back(blk * c.block + p % c.block);
      ++ctx_rows;
    }
  }
  // Caches written on the CPU (both backends read the same bytes).
  const std::vector<float> kx = randn(static_cast<size_t>(ctx_rows * row), 12, 2.0f);
  const std::vector<float> vx = randn(static_cast<size_t>(ctx_rows * row), 13);
  const size_t cbytes = static_cast<size_t>(total_blocks) * c.block * row * dtype_bits(dt) / 8;
  std::vector<uint8_t> kc(cbytes), vc(cbytes);
  cpu->kv_write(kx.data(), row, vx.data(), row, ctx_rows, row, slots.data(), kc.data(), vc.data(),
                dt, 0.05f, 0.02f);
  const int64_t ldq = int64_t{c.heads} * c.D + 3;
  const std::vector<float> q = GpuOps::strided(T, int64_t{c.heads} * c.D, ldq, 14);
  std::vector<float> want(q.size(), kPad);
  AttentionArgs a;
  a.q = q.data();
  a.ldq = ldq;
  a.out = want.data();
  a.ldo = ldq;
  a.k_cache = kc.data();
  a.v_cache = vc.data();
  a.kv_dtype = dt;
  a.k_scale = dt == DType::kF8_E4M3 ? 0.05f : 1.0f;
  a.v_scale = dt == DType::kF8_E4M3 ? 0.02f : 1.0f;
  a.n_heads = c.heads;
  a.n_kv_heads = c.kv_heads;
  a.head_dim = c.D;
  a.block_size = c.block;
  a.scale = 0.3f;
  a.sliding_window = c.window;
  a.n_seqs = n_seqs;
  a.q_begin = qb.data();
  a.n_q = nq.data();
  a.pos0 = p0.data();
  a.block_tables = tables.data();
  a.table_offset = toff.data();
  a.max_q_per_seq = hint_q;
  a.max_keys = hint_keys;
  cpu->attention(a);
  DevBuf<float> dq(*gpu, q), dout(*gpu, std::vector<float>(q.size(), kPad));
  DevBuf<uint8_t> dkc(*gpu, kc), dvc(*gpu, vc);
  DevBuf<int32_t> dqb(*gpu, qb), dnq(*gpu, nq), dp0(*gpu, p0), dt_(*gpu, tables), dto(*gpu, toff);
  AttentionArgs d = a;
  d.q = dq.p;
  d.out = dout.p;
  d.k_cache = dkc.p;
  d.v_cache = dvc.p;
  d.q_begin = dqb.p;
  d.n_q = dnq.p;
  d.pos0 = dp0.p;
  d.block_tables = dt_.p;
  d.table_offset = dto.p;
  gpu->attention(d);
  GpuOps::expect_strided(dout.host(), want, T, int64_t{c.heads} * c.D, ldq, 1e-5,
                         what + " D=" + std::to_string(c.D) + " " + std::string(dtype_name(dt)));
}

// Batches mixing decode rows and prefill chunks (the general kernel).
TEST_F(GpuOps, AttentionMatchesReference) {
  const std::vector<AttnCase> cases = {
      {4, 4, 64, 16, 0, {1}, {0}},
      {8, 2, 80, 3, 0, {1, 17, 2}, {40, 0, 9}},
      {4, 1, 256, 16, 5, {17, 1}, {3, 60}},
      {2, 2, 512, 4, 0, {9}, {30}},
      {6, 3, 33, 1, 7, {1, 1, 1}, {0, 20, 45}},
  };
  std::mt19937 g(11);
  for (const AttnCase& c : cases)
    for (DType dt : {DType::kF32, DType::kBF16, DType::kF8_E4M3})
      check_attention(cpu.get(), gpu.get(), c, dt, g, 0, 0, "attention");
}

// Decode steps (one query per sequence, n_q 0 = a CUDA-graph padding sequence): the split-key
// kernel (kernels_attention_decode.cu) for GQA groups of 1..16 heads (head chunks of 4), head_dim
// up to 512, windows, contexts from 1 to 5000 keys; head_dim 33 falls back to the general kernel.
// Every max_keys hint (too small, right, none) gives the same result.
TEST_F(GpuOps, DecodeAttentionSplitKeys) {
  const std::vector<AttnCase> cases = {
      {32, 16, 256, 16, 1024, {1}, {4095}},      {32, 4, 512, 16, 0, {1, 1}, {4999, 17}},
      {8, 8, 64, 16, 0, {1, 0, 1}, {0, 0, 300}}, {12, 2, 80, 3, 7, {1, 1, 1}, {5, 40, 700}},
      {16, 1, 128, 32, 0, {1}, {2047}},          {5, 5, 32, 1, 0, {1, 1}, {1, 130}},
      {6, 3, 33, 4, 0, {1, 1}, {50, 3}},
  };
  std::mt19937 g(12);
  for (const AttnCase& c : cases)
    for (DType dt : {DType::kF32, DType::kBF16, DType::kF8_E4M3})
      for (int keys : {0, 64, 5000})
        check_attention(cpu.get(), gpu.get(), c, dt, g, 1, keys,
                        "decode attention keys hint " + std::to_string(keys));
}

// The encoder ops and the image-block window (kv_limit) against the CPU backend.
TEST_F(GpuOps, EncoderOpsMatchCpu) {
  for (auto [Hq, Hkv, D] : {std::tuple{16, 16, 72}, std::tuple{6, 2, 64}}) {
    const std::vector<int32_t> seg = {0, 1, 18, 130};
    const int T = seg.back();
    const int64_t ldq = Hq * D + 3, ldk = Hkv * D + 1;
    const std::vector<float> q = randn(static_cast<size_t>(T * ldq), 1);
    const std::vector<float> k = randn(static_cast<size_t>(T * ldk), 2);
    const std::vector<float> v = randn(static_cast<size_t>(T * ldk), 3);
    std::vector<float> want(static_cast<size_t>(T * ldq), kPad);
    SegmentAttentionArgs a;
    a.q = q.data(), a.k = k.data(), a.v = v.data(), a.ldq = ldq, a.ldk = a.ldv = ldk;
    a.out = want.data(), a.ldo = ldq, a.n_heads = Hq, a.n_kv_heads = Hkv, a.head_dim = D;
    a.scale = 1.0f, a.n_segments = 3, a.seg = seg.data();
    cpu->attention_segments(a);
    DevBuf<float> dq(*gpu, q), dk(*gpu, k), dv(*gpu, v),
        dout(*gpu, std::vector<float>(want.size(), kPad));
    DevBuf<int32_t> dseg(*gpu, seg);
    SegmentAttentionArgs d = a;
    d.q = dq.p, d.k = dk.p, d.v = dv.p, d.out = dout.p, d.seg = dseg.p;
    gpu->attention_segments(d);
    expect_strided(dout.host(), want, T, int64_t{Hq} * D, ldq, 1e-5, "attention_segments");
  }
  {
    const int gh = 6, gw = 12, k = 3;
    const int64_t n = 1152, ld = n + 5;
    const std::vector<float> x = strided(gh * gw, n, ld, 4);
    std::vector<float> want(static_cast<size_t>((gh / k) * (gw / k) * ld), kPad);
    cpu->avg_pool(x.data(), ld, gh, gw, k, n, 33.94f, want.data(), ld);
    DevBuf<float> dx(*gpu, x), dout(*gpu, std::vector<float>(want.size(), kPad));
    gpu->avg_pool(dx.p, ld, gh, gw, k, n, 33.94f, dout.p, ld);
    expect_strided(dout.host(), want, (gh / k) * (gw / k), n, ld, 1e-6, "avg_pool");
    std::vector<float> c = strided(7, 33, 40, 5), cw = c;
    cpu->clamp(cw.data(), 40, 7, 33, -0.5f, 0.25f);
    DevBuf<float> dc(*gpu, c);
    gpu->clamp(dc.p, 40, 7, 33, -0.5f, 0.25f);
    expect_strided(dc.host(), cw, 7, 33, 40, 0.0, "clamp");
    for (DType dt : {DType::kF32, DType::kBF16}) {
      HostWeight sub(1, 33, 33, dt, 6), mul(1, 33, 33, dt, 7);
      const Weight ds = gpu->upload(sub.w), dm = gpu->upload(mul.w);
      std::vector<float> y = strided(7, 33, 40, 8), yw = y;
      cpu->sub_mul(yw.data(), 40, 7, 33, sub.w, mul.w);
      DevBuf<float> dy(*gpu, y);
      gpu->sub_mul(dy.p, 40, 7, 33, ds, dm);
      expect_strided(dy.host(), yw, 7, 33, 40, 1e-6, "sub_mul");
    }
  }
}

TEST_F(GpuOps, AttentionKvLimitSeesAhead) {
  const int H = 4, D = 64, B = 16, T = 70, W = 8;
  const int64_t row = int64_t{H} * D;
  std::vector<int32_t> slots(T), table = {3, 0, 4, 1, 2}, qb = {0}, nq = {T}, p0 = {0}, off = {0},
                                 lim(T, -1);
  for (int p = 0; p < T; ++p) slots[p] = table[p / B] * B + p % B;
  for (int p = 5; p < 65; ++p) lim[p] = 64;  // an image block of 60 soft tokens, longer than W
  const std::vector<float> kx = randn(static_cast<size_t>(T * row), 12),
                           vx = randn(static_cast<size_t>(T * row), 13);
  std::vector<float> kc(static_cast<size_t>(5 * B * row)), vc = kc;
  cpu->kv_write(kx.data(), row, vx.data(), row, T, row, slots.data(), kc.data(), vc.data(),
                DType::kF32);
  const std::vector<float> q = strided(T, row, row, 14);
  std::vector<float> want(q.size(), kPad);
  AttentionArgs a;
  a.q = q.data(), a.ldq = row, a.out = want.data(), a.ldo = row, a.k_cache = kc.data();
  a.v_cache = vc.data(), a.n_heads = a.n_kv_heads = H, a.head_dim = D, a.block_size = B;
  a.sliding_window = W, a.n_seqs = 1, a.q_begin = qb.data(), a.n_q = nq.data();
  a.pos0 = p0.data(), a.block_tables = table.data(), a.table_offset = off.data();
  a.kv_limit = lim.data();
  cpu->attention(a);
  DevBuf<float> dq(*gpu, q), dout(*gpu, std::vector<float>(q.size(), kPad)), dkc(*gpu, kc),
      dvc(*gpu, vc);
  DevBuf<int32_t> dqb(*gpu, qb), dnq(*gpu, nq), dp0(*gpu, p0), dtb(*gpu, table), dof(*gpu, off),
      dl(*gpu, lim);
  AttentionArgs d = a;
  d.q = dq.p, d.out = dout.p, d.k_cache = dkc.p, d.v_cache = dvc.p, d.q_begin = dqb.p;
  d.n_q = dnq.p, d.pos0 = dp0.p, d.block_tables = dtb.p, d.table_offset = dof.p, d.kv_limit = dl.p;
  gpu->attention(d);
  expect_strided(dout.host(), want, T, row, row, 1e-5, "attention kv_limit");
}

}  // namespace
}  // namespace fc::gputest
