// WeightArena (the CPU backend's huge-page weight copies) and CpuBackend::upload: copies are
// byte-identical, 64-byte aligned, shared for the same source, split over threads when large; the
// uploaded NVFP4 / dense weights multiply exactly as the originals; copy_weights = false keeps
// the original pointers.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/weight_arena.h"

namespace fc::cpu {
namespace {

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

TEST(WeightArena, CopiesAreIdenticalAlignedAndShared) {
  ThreadPool pool(3);
  WeightArena arena;
  // Odd sizes and offsets; one copy above the parallel piece size (8 MiB) and one above a chunk.
  const std::vector<uint8_t> a = random_bytes(1001, 1), b = random_bytes(size_t{21} << 20, 2),
                             c = random_bytes(size_t{300} << 20, 3);
  const void* ca = arena.copy(a.data() + 1, a.size() - 1, pool);
  const void* cb = arena.copy(b.data() + 3, b.size() - 3, pool);
  const void* cc = arena.copy(c.data(), c.size(), pool);
  for (const void* p : {ca, cb, cc}) {
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  }
  if (arena.refused()) GTEST_SKIP() << "not enough free memory for the copies on this machine";
  EXPECT_NE(ca, a.data() + 1);
  EXPECT_EQ(std::memcmp(ca, a.data() + 1, a.size() - 1), 0);
  EXPECT_EQ(std::memcmp(cb, b.data() + 3, b.size() - 3), 0);
  EXPECT_EQ(std::memcmp(cc, c.data(), c.size()), 0);
  // The same source and length: the same copy; another length: another copy.
  EXPECT_EQ(arena.copy(a.data() + 1, a.size() - 1, pool), ca);
  const void* ca2 = arena.copy(a.data() + 1, a.size() - 2, pool);
  EXPECT_NE(ca2, ca);
  EXPECT_EQ(std::memcmp(ca2, a.data() + 1, a.size() - 2), 0);
  EXPECT_EQ(arena.bytes(), a.size() - 1 + b.size() - 3 + c.size() + a.size() - 2);
  // Nothing to copy: the source itself.
  EXPECT_EQ(arena.copy(nullptr, 10, pool), nullptr);
  EXPECT_EQ(arena.copy(a.data(), 0, pool), a.data());
}

TEST(WeightArena, UploadedWeightsMultiplyAsTheOriginals) {
  ThreadPool pool(2);
  constexpr int64_t N = 37, K = 272;
  // NVFP4 with padded strides and a pre_quant_scale; scales without the NaN bytes.
  std::vector<uint8_t> codes = random_bytes(static_cast<size_t>(N * (K / 2 + 7)), 4);
  std::vector<uint8_t> scales = random_bytes(static_cast<size_t>(N * (K / 16 + 3)), 5);
  for (auto& s : scales)
    if ((s & 0x7F) == 0x7F) s = 0x38;
  std::vector<uint16_t> dense(static_cast<size_t>(N * (K + 5)));
  std::mt19937 rng(6);
  for (auto& d : dense) d = static_cast<uint16_t>(0x3C00 + rng() % 0x800);  // BF16 in [0.0078, 2)
  Weight q;
  q.data = codes.data();
  q.dtype = DType::kU8;
  q.rows = N;
  q.cols = K;
  q.ld = K / 2 + 7;
  q.format = WeightFormat::kNvfp4;
  q.block_scale = scales.data();
  q.scale_ld = K / 16 + 3;
  q.global_scale = 0.031f;
  q.name = "q";
  Weight d;
  d.data = dense.data();
  d.dtype = DType::kBF16;
  d.rows = N;
  d.cols = K;
  d.ld = K + 5;
  d.name = "d";
  std::vector<float> x(static_cast<size_t>(3 * K));
  for (auto& v : x) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) / 1000.0f;

  CpuOptions off;
  off.copy_weights = false;
  CpuBackend plain(pool, off), copying(pool);
  for (const Weight& w : {q, d}) {
    const Weight same = plain.upload(w), copied = copying.upload(w);
    EXPECT_EQ(same.data, w.data);
    EXPECT_EQ(same.block_scale, w.block_scale);
    std::vector<float> y0(static_cast<size_t>(3 * N)), y1(y0.size());
    plain.linear(x.data(), 3, K, same, y0.data(), N, false);
    copying.linear(x.data(), 3, K, copied, y1.data(), N, false);
    if (copying.weight_bytes_copied() == 0) continue;  // refused: nothing to compare
    EXPECT_NE(copied.data, w.data) << w.name;
    for (size_t i = 0; i < y0.size(); ++i) ASSERT_EQ(y0[i], y1[i]) << w.name << " " << i;
  }
}

}  // namespace
}  // namespace fc::cpu
