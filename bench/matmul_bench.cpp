// Prints matmul throughput for Gemma-sized linear layers with bf16 weights, next to the memory
// read bandwidth of this machine measured in the same run. Not a test: figures only.
//   bench_matmul [threads [avx512|avx2|scalar]]   (default: all hardware threads, best ISA)
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/matmul.h"
#include "bench/bench_util.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace {

using fc::bench::best_time;
using fc::bench::Clock;
using fc::bench::seconds_since;

// Multi-threaded read of a whole buffer (n words), seconds.
double time_read(fc::ThreadPool& pool, const std::vector<uint64_t>& buf,
                 std::vector<uint64_t>& partial) {
  const auto t0 = Clock::now();
  pool.parallel_for(static_cast<int64_t>(buf.size()), 1 << 16, [&](int64_t b, int64_t e, int th) {
    partial[th] += fc::bench::sum_words(buf.data() + b, e - b);
  });
  return seconds_since(t0);
}

std::vector<uint16_t> random_bf16(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  std::vector<uint16_t> v(n);
  for (auto& h : v) h = fc::f32_to_bf16(u(rng));
  return v;
}

struct Shape {
  const char* name;
  int64_t K, N;
};

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : fc::hardware_threads();
  fc::ThreadPool pool(threads);
  using fc::cpu::MatmulIsa;
  MatmulIsa isa = MatmulIsa::kAuto;
  std::string isa_name = fc::cpu::matmul_isa();
  if (argc > 2) {
    isa_name = argv[2];
    isa = isa_name == "avx512" ? MatmulIsa::kAvx512
          : isa_name == "avx2" ? MatmulIsa::kAvx2
                               : MatmulIsa::kScalar;
  }
  if (!fc::cpu::matmul_isa_supported(isa)) {
    std::fprintf(stderr, "isa %s not supported here\n", isa_name.c_str());
    return 1;
  }
  std::printf("matmul isa: %s, threads: %d\n", isa_name.c_str(), threads);

  // 1 GiB for the bandwidth reference, first touched by the pool (pages near their readers).
  std::vector<uint64_t> membuf(size_t{1} << 27);
  pool.parallel_for(static_cast<int64_t>(membuf.size()), 1 << 16, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) membuf[i] = static_cast<uint64_t>(i);
  });
  std::vector<uint64_t> partial(static_cast<size_t>(threads));

  // 512 MiB of bf16 weights, viewed as back-to-back matrices of each shape. Decode runs sweep all
  // of them, so every call streams its weights from DRAM, as a decode step over many layers does.
  std::mt19937 rng(1);
  const std::vector<uint16_t> wpool = random_bf16(size_t{1} << 28, rng);

  const Shape shapes[] = {
      {"q/gate/up-like", 1536, 6144}, {"o/kv-like", 1536, 2048}, {"down-like", 6144, 1536}};
  const int64_t decode_ts[] = {1, 4};
  struct Run {
    const Shape* shape;
    int64_t T;
    int copies;
    std::vector<float> x, y;
    double best = 1e30;  // seconds per sweep over all copies
  };
  std::vector<Run> runs;
  for (const Shape& s : shapes) {
    for (int64_t T : decode_ts) {
      const int copies = static_cast<int>(static_cast<int64_t>(wpool.size()) / (s.K * s.N));
      runs.push_back({&s, T, copies, std::vector<float>(static_cast<size_t>(T * s.K), 0.01f),
                      std::vector<float>(static_cast<size_t>(T * s.N))});
    }
  }
  // The machine may be shared: interleave the bandwidth reference with the decode runs and keep
  // the best of each, so both are taken under the same conditions.
  double mem_best = 1e30;
  for (int rep = 0; rep < 7; ++rep) {
    mem_best = std::min(mem_best, time_read(pool, membuf, partial));
    for (Run& r : runs) {
      const Shape& s = *r.shape;
      const auto t0 = Clock::now();
      for (int c = 0; c < r.copies; ++c) {
        const fc::cpu::MatView v{wpool.data() + c * s.K * s.N, fc::DType::kBF16, s.N, s.K, s.K};
        fc::cpu::matmul_with_isa(isa, pool, r.x.data(), r.T, s.K, v, r.y.data(), s.N);
      }
      r.best = std::min(r.best, seconds_since(t0));
    }
  }
  uint64_t total = 0;
  for (uint64_t v : partial) total += v;
  const double bw = static_cast<double>(membuf.size()) * 8 / mem_best;
  std::printf("memory read bandwidth (1 GiB multi-threaded sum): %.1f GB/s%s\n\n", bw / 1e9,
              total == 42 ? " " : "");

  std::printf("%-16s %6s %6s %5s  %9s  %11s  %s\n", "shape", "K", "N", "T", "GFLOP/s",
              "weight GB/s", "% of mem bw");
  for (const Run& r : runs) {
    const Shape& s = *r.shape;
    const double per_call = r.best / r.copies;
    const double gbs = static_cast<double>(s.K * s.N) * 2 / per_call;
    std::printf("%-16s %6lld %6lld %5lld  %9.1f  %11.1f  %5.1f%%\n", s.name,
                static_cast<long long>(s.K), static_cast<long long>(s.N),
                static_cast<long long>(r.T), 2.0 * r.T * s.K * s.N / per_call / 1e9, gbs / 1e9,
                100.0 * gbs / bw);
  }
  // Prefill: compute-bound, one matrix reused (it stays in cache across the timed calls).
  for (const Shape& s : shapes) {
    for (int64_t T : {16, 64, 512}) {
      std::vector<float> x(static_cast<size_t>(T * s.K), 0.01f), y(static_cast<size_t>(T * s.N));
      const fc::cpu::MatView v{wpool.data(), fc::DType::kBF16, s.N, s.K, s.K};
      const double t = best_time(
          5, [&] { fc::cpu::matmul_with_isa(isa, pool, x.data(), T, s.K, v, y.data(), s.N); });
      std::printf("%-16s %6lld %6lld %5lld  %9.1f\n", s.name, static_cast<long long>(s.K),
                  static_cast<long long>(s.N), static_cast<long long>(T),
                  2.0 * T * s.K * s.N / t / 1e9);
    }
  }
  return 0;
}
