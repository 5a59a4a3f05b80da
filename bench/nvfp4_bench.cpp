// Prints NVFP4 (W4A16) GEMV / small-T throughput for Gemma-sized linear layers next to BF16
// matmul of the same shapes and the memory read bandwidth, all measured in the same run. Weight
// GB/s counts the bytes a pass reads (NVFP4: codes + block scales; BF16: 2 bytes per weight).
// Not a test: figures only.
//   bench_nvfp4 [--threads N] [--isa avx512-bf16|avx512|avx2-i16|avx2|scalar] [--reps R] (default:
//   2 threads) [--prefill] [--int8]
// --int8: the decode tables use the opt-in int8 NVFP4 kernels (nvfp4_prefill_i8.h) instead.
// --prefill: only the prefill GEMMs (E2B shapes, T = 64 / 256 / 1024; exact NVFP4, the opt-in int8
// NVFP4 prefill, BF16) in GFLOP/s next to this machine's fp32 FMA peak measured in the same run,
// then the direct and blocked paths forced at small T (where one overtakes the other).
#include <immintrin.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/matmul.h"
#include "backend/cpu/nvfp4_matmul.h"
#include "backend/cpu/nvfp4_prefill_i8.h"
#include "backend/cpu/weight_arena.h"
#include "bench/bench_util.h"
#include "core/thread_pool.h"
#include "quant/nvfp4.h"

namespace {

using fc::bench::best_time;
using fc::bench::Clock;
using fc::bench::seconds_since;

// xorshift64*: fills hundreds of MiB fast enough for a benchmark's set-up.
struct Rng {
  uint64_t s = 0x9E3779B97F4A7C15ull;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
};

struct Shape {
  const char* name;
  int64_t K, N;  // y[N] = W[N, K] · x[K]
};

// A dense NVFP4 matrix of shape s over codes [N, K/2] and block scales [N, K/16], global scale
// 0.001 (with block scales 0x20..0x4F the products stay in a normal fp32 range).
fc::quant::Nvfp4Matrix nvfp4_view(const uint8_t* codes, const uint8_t* scales, const Shape& s) {
  fc::quant::Nvfp4Matrix m;
  m.packed = codes;
  m.scales = scales;
  m.rows = s.N;
  m.cols = s.K;
  m.ld = s.K / 2;
  m.scale_ld = s.K / 16;
  m.global_scale = 0.001f;
  return m;
}

// Random NVFP4 weights of one shape: codes and block scales owned by the caller's vectors,
// viewed by nvfp4_view.
fc::quant::Nvfp4Matrix random_nvfp4(Rng& rng, const Shape& s, std::vector<uint8_t>& codes,
                                    std::vector<uint8_t>& scales) {
  codes.resize(static_cast<size_t>(s.N * s.K / 2));
  scales.resize(static_cast<size_t>(s.N * s.K / 16));
  for (auto& c : codes) c = static_cast<uint8_t>(rng.next());
  for (auto& c : scales) c = static_cast<uint8_t>(0x20 + rng.next() % 0x30);
  return nvfp4_view(codes.data(), scales.data(), s);
}

// fp32 FMA peak of one core, GFLOP/s: 12 independent 8-lane FMA chains (Zen 3: 2 FMA pipes,
// latency 4 → 8 in flight saturate them), timed in thread CPU time so that time-sharing with
// other processes does not count. 0 without AVX2 + FMA.
__attribute__((target("avx2,fma"))) double fma_core_gflops() {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(1.0f + static_cast<float>(i) * 1e-7f);
  const __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  constexpr long kIters = 50'000'000;
  timespec t0{}, t1{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
  for (long it = 0; it < kIters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], b, c);
  }
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
  float sink = 0;
  for (int i = 0; i < 12; ++i) sink += _mm256_cvtss_f32(a[i]);
  const double s = static_cast<double>(t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
  return (sink == 12345.0f ? 1.0 : 0.0) + 12.0 * 16.0 * kIters / s / 1e9;
}

// Prefill GEMMs only (--prefill).
int prefill_table(fc::ThreadPool& pool, fc::cpu::MatmulIsa isa, int reps) {
  std::vector<double> per_thread(static_cast<size_t>(pool.size()));
  pool.parallel_for(pool.size(), 1, [&](int64_t b, int64_t e, int th) {
    per_thread[static_cast<size_t>(th)] = fma_core_gflops();
  });
  double peak = 0;
  for (double g : per_thread) peak += g;
  std::printf("fp32 FMA peak (all %d threads at once, thread CPU time): %.1f GFLOP/s\n",
              pool.size(), peak);
  const Shape shapes[] = {{"E2B q/gate/up", 1536, 6144},
                          {"E2B down", 6144, 1536},
                          {"E2B o-proj", 2048, 1536},
                          {"E2B kv-proj", 1536, 512}};
  Rng rng;
  std::printf("%-14s %6s %6s %5s | %12s %6s | %12s %6s | %12s\n", "prefill", "K", "N", "T",
              "exact GFLOP/s", "%peak", "int8 GFLOP/s", "%peak", "bf16 GFLOP/s");
  for (const Shape& s : shapes) {
    std::vector<uint8_t> codes, scales;
    const fc::quant::Nvfp4Matrix m = random_nvfp4(rng, s, codes, scales);
    std::vector<uint16_t> bf16(static_cast<size_t>(s.N * s.K));
    for (auto& h : bf16) h = static_cast<uint16_t>(0x3C00 + rng.next() % 0x200);
    const fc::cpu::MatView v{bf16.data(), fc::DType::kBF16, s.N, s.K, s.K};
    for (int64_t T : {64, 256, 1024}) {
      std::vector<float> x(static_cast<size_t>(T * s.K)), y(static_cast<size_t>(T * s.N));
      for (auto& f : x) f = static_cast<float>(rng.next() % 2001) * 1e-3f - 1.0f;
      const double te = best_time(reps, [&] {
        fc::cpu::nvfp4_matmul_with_isa(isa, pool, x.data(), T, s.K, m, y.data(), s.N);
      });
      const double ti = best_time(
          reps, [&] { fc::cpu::nvfp4_matmul_i8(pool, x.data(), T, s.K, m, y.data(), s.N); });
      const double tb = best_time(
          reps, [&] { fc::cpu::matmul_with_isa(isa, pool, x.data(), T, s.K, v, y.data(), s.N); });
      const double gf = 2.0 * static_cast<double>(T * s.K * s.N) / 1e9;
      std::printf("%-14s %6lld %6lld %5lld | %12.1f %5.0f%% | %12.1f %5.0f%% | %12.1f\n", s.name,
                  static_cast<long long>(s.K), static_cast<long long>(s.N),
                  static_cast<long long>(T), gf / te, 100.0 * gf / te / peak, gf / ti,
                  100.0 * gf / ti / peak, gf / tb);
    }
  }
  // Where the blocked path overtakes the direct (decode) kernels: both forced, small T, E2B and
  // 26B-A4B expert shapes (the routed experts of a prefill get T ≈ 8 · prompt / 128 rows each).
  const Shape small[] = {
      {"E2B q/gate/up", 1536, 6144}, {"26B expert g/u", 2816, 704}, {"26B expert down", 704, 2816}};
  std::printf("\n%-16s %6s %6s %4s | %14s | %15s\n", "direct/blocked", "K", "N", "T",
              "direct GFLOP/s", "blocked GFLOP/s");
  for (const Shape& s : small) {
    std::vector<uint8_t> codes, scales;
    const fc::quant::Nvfp4Matrix m = random_nvfp4(rng, s, codes, scales);
    for (int64_t T : {4, 8, 16, 24, 32, 48}) {
      std::vector<float> x(static_cast<size_t>(T * s.K), 0.01f), y(static_cast<size_t>(T * s.N));
      double t[2];
      for (int i = 0; i < 2; ++i) {
        const auto path = i == 0 ? fc::cpu::MatmulPath::kDirect : fc::cpu::MatmulPath::kBlocked;
        t[i] = best_time(reps * 3, [&] {
          fc::cpu::nvfp4_matmul_with_isa(isa, pool, x.data(), T, s.K, m, y.data(), s.N, false,
                                         path);
        });
      }
      const double gf = 2.0 * static_cast<double>(T * s.K * s.N) / 1e9;
      std::printf("%-16s %6lld %6lld %4lld | %14.1f | %15.1f\n", s.name,
                  static_cast<long long>(s.K), static_cast<long long>(s.N),
                  static_cast<long long>(T), gf / t[0], gf / t[1]);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, reps = 7;
  bool prefill_only = false, int8 = false;
  std::string isa_name = "auto";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      threads = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--isa" && i + 1 < argc) {
      isa_name = argv[++i];
    } else if (a == "--prefill") {
      prefill_only = true;
    } else if (a == "--int8") {
      int8 = true;
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr,
                   "usage: bench_nvfp4 [--threads N] [--isa "
                   "avx512-bf16|avx512|avx2-i16|avx2|scalar] [--reps R] "
                   "[--prefill] [--int8]\n");
      return 2;
    }
  }
  using fc::cpu::MatmulIsa;
  bool known = false;
  const MatmulIsa isa = fc::bench::isa_from_name(isa_name, &known);
  if (!known) {
    std::fprintf(stderr, "bench_nvfp4: unknown --isa %s\n", isa_name.c_str());
    return 2;
  }
  if (!fc::cpu::matmul_isa_supported(isa)) {
    std::fprintf(stderr, "isa %s not supported here\n", isa_name.c_str());
    return 1;
  }
  if (isa == MatmulIsa::kAuto) {
    isa_name = std::string(fc::cpu::nvfp4_matmul_isa()) +
               " (direct: " + fc::cpu::nvfp4_direct_kernels() + ")";
  }
  fc::ThreadPool pool(threads);
  std::printf("isa: %s, threads: %d%s\n", isa_name.c_str(), threads,
              int8 ? ", NVFP4 decode columns: the opt-in int8 kernels (--int8)" : "");
  if (prefill_only) return prefill_table(pool, isa, reps);
  // The NVFP4 decode product of the tables below: the exact kernels of `isa`, or with --int8 the
  // opt-in int8 ones (nvfp4_prefill_i8.h; CpuOptions::decode_int8).
  auto nvfp4_mm = [&](const float* x, int64_t T, int64_t K, const fc::quant::Nvfp4Matrix& m,
                      float* y) {
    if (int8) {
      fc::cpu::nvfp4_matmul_i8(pool, x, T, K, m, y, m.rows);
    } else {
      fc::cpu::nvfp4_matmul_with_isa(isa, pool, x, T, K, m, y, m.rows);
    }
  };

  fc::bench::BandwidthProbe probe(pool, size_t{1} << 30);  // 1 GiB

  // Weight pools far larger than any cache, viewed as back-to-back matrices of each shape: a
  // decode sweep over all copies streams every weight from DRAM, as a step over many layers does.
  // NVFP4: 448 MiB of codes + 56 MiB of scales (random codes, scales in [2⁻³, 2³]).
  Rng rng;
  std::vector<uint64_t> codes_buf((size_t{448} << 20) / 8);
  std::vector<uint8_t> scales_buf(size_t{56} << 20);
  for (auto& w : codes_buf) w = rng.next();
  for (auto& s : scales_buf) s = static_cast<uint8_t>(0x20 + rng.next() % 0x30);
  // BF16: 512 MiB of small random values.
  std::vector<uint16_t> bf16_buf(size_t{1} << 28);
  for (auto& h : bf16_buf) h = static_cast<uint16_t>(0x3C00 + rng.next() % 0x200);
  // Both on huge pages, as the CPU backend keeps checkpoint weights (cpu/weight_arena.h).
  fc::cpu::WeightArena arena;
  const auto* codes =
      static_cast<const uint8_t*>(arena.copy(codes_buf.data(), codes_buf.size() * 8, pool));
  const auto* scales =
      static_cast<const uint8_t*>(arena.copy(scales_buf.data(), scales_buf.size(), pool));
  const auto* bf16 =
      static_cast<const uint16_t*>(arena.copy(bf16_buf.data(), bf16_buf.size() * 2, pool));

  const Shape shapes[] = {{"E2B q/gate/up", 1536, 6144}, {"E2B down", 6144, 1536},
                          {"E2B o-proj", 2048, 1536},    {"E2B kv-proj", 1536, 512},
                          {"31B gate/up", 5376, 21504},  {"31B down", 21504, 5376}};
  const int64_t ts[] = {1, 2, 3, 4};
  struct Run {
    const Shape* s;
    int64_t T;
    int q_copies, b_copies;
    std::vector<float> x, y;
    double q_best = 1e30, b_best = 1e30;  // seconds per sweep over all copies
  };
  std::vector<Run> runs;
  for (const Shape& s : shapes) {
    for (int64_t T : ts) {
      Run r{&s, T, 0, 0, {}, {}};
      r.q_copies = static_cast<int>(
          std::min<int64_t>(static_cast<int64_t>(codes_buf.size() * 8) / (s.N * s.K / 2),
                            static_cast<int64_t>(scales_buf.size()) / (s.N * s.K / 16)));
      r.b_copies = static_cast<int>(static_cast<int64_t>(bf16_buf.size()) / (s.N * s.K));
      r.x.assign(static_cast<size_t>(T * s.K), 0.01f);
      r.y.assign(static_cast<size_t>(T * s.N), 0.0f);
      runs.push_back(std::move(r));
    }
  }
  auto copy_view = [&](const Shape& s, int c) {
    return nvfp4_view(codes + c * s.N * s.K / 2, scales + c * s.N * s.K / 16, s);
  };

  // The machine may be shared: interleave the bandwidth reference with the runs and keep the
  // best of each, so all figures are taken under the same conditions.
  double bw = 0;
  for (int rep = 0; rep < reps; ++rep) {
    bw = std::max(bw, probe.measure(1));
    for (Run& r : runs) {
      const Shape& s = *r.s;
      auto t0 = Clock::now();
      for (int c = 0; c < r.q_copies; ++c) {
        nvfp4_mm(r.x.data(), r.T, s.K, copy_view(s, c), r.y.data());
      }
      r.q_best = std::min(r.q_best, seconds_since(t0));
      t0 = Clock::now();
      for (int c = 0; c < r.b_copies; ++c) {
        const fc::cpu::MatView v{bf16 + c * s.K * s.N, fc::DType::kBF16, s.N, s.K, s.K};
        fc::cpu::matmul_with_isa(isa, pool, r.x.data(), r.T, s.K, v, r.y.data(), s.N);
      }
      r.b_best = std::min(r.b_best, seconds_since(t0));
    }
  }
  std::printf("memory read bandwidth (1 GiB, %d threads): %.1f GB/s%s\n\n", threads, bw / 1e9,
              probe.checksum() == 42 ? " " : "");
  std::printf("%-14s %6s %6s %3s | %9s %8s %6s | %9s %8s %6s | %s\n", "shape", "K", "N", "T",
              "nvfp4 us", "GB/s", "%bw", "bf16 us", "GB/s", "%bw", "speed-up");
  for (const Run& r : runs) {
    const Shape& s = *r.s;
    const double q_call = r.q_best / r.q_copies, b_call = r.b_best / r.b_copies;
    const double q_bytes = static_cast<double>(s.N * (s.K / 2 + s.K / 16));
    const double b_bytes = static_cast<double>(s.N * s.K * 2);
    std::printf("%-14s %6lld %6lld %3lld | %9.1f %8.1f %5.1f%% | %9.1f %8.1f %5.1f%% | %.2fx\n",
                s.name, static_cast<long long>(s.K), static_cast<long long>(s.N),
                static_cast<long long>(r.T), q_call * 1e6, q_bytes / q_call / 1e9,
                100.0 * q_bytes / q_call / bw, b_call * 1e6, b_bytes / b_call / 1e9,
                100.0 * b_bytes / b_call / bw, b_call / q_call);
  }

  // The decode kernels' compute ceiling: a matrix that stays in L2 (442 KiB NVFP4), called again
  // and again. Far above the DRAM figure means the DRAM runs above are bandwidth-bound.
  for (int64_t T : ts) {
    const Shape& s = shapes[3];
    std::vector<float> x(static_cast<size_t>(T * s.K), 0.01f), y(static_cast<size_t>(T * s.N));
    const double t = best_time(reps, [&] {
      for (int i = 0; i < 20; ++i) nvfp4_mm(x.data(), T, s.K, copy_view(s, 0), y.data());
    });
    std::printf("in-cache NVFP4 decode %s T=%lld: %.1f GB/s of weights\n", s.name,
                static_cast<long long>(T),
                20.0 * static_cast<double>(s.N * (s.K / 2 + s.K / 16)) / t / 1e9);
  }

  // Where the direct path stops paying (nvfp4_direct_max_rows): both paths at T around it, one
  // matrix reused (in cache), microseconds per call.
  std::printf("\n%-14s %6s %6s %4s | %10s | %10s | %s\n", "direct/blocked", "K", "N", "T",
              "direct us", "blocked us", "auto direct up to");
  for (const Shape& s : {shapes[0], shapes[1]}) {
    for (int64_t T : {4, 6, 8, 9, 10, 12, 16}) {
      std::vector<float> x(static_cast<size_t>(T * s.K), 0.01f), y(static_cast<size_t>(T * s.N));
      double us[2];
      for (int path = 0; path < 2; ++path) {
        const fc::cpu::MatmulPath p =
            path == 0 ? fc::cpu::MatmulPath::kDirect : fc::cpu::MatmulPath::kBlocked;
        us[path] = 1e6 * best_time(3, [&] {
                     fc::cpu::nvfp4_matmul_with_isa(isa, pool, x.data(), T, s.K, copy_view(s, 0),
                                                    y.data(), s.N, false, p);
                   });
      }
      std::printf("%-14s %6lld %6lld %4lld | %10.1f | %10.1f | %lld\n", s.name,
                  static_cast<long long>(s.K), static_cast<long long>(s.N),
                  static_cast<long long>(T), us[0], us[1],
                  static_cast<long long>(fc::cpu::nvfp4_direct_max_rows(isa)));
    }
  }

  // Prefill (compute-bound; one matrix reused, so it stays in cache): GFLOP/s.
  std::printf("\n%-14s %6s %6s %4s | %12s | %12s\n", "prefill", "K", "N", "T", "nvfp4 GFLOP/s",
              "bf16 GFLOP/s");
  for (const Shape& s : {shapes[0], shapes[1]}) {
    for (int64_t T : {16, 64, 256}) {
      std::vector<float> x(static_cast<size_t>(T * s.K), 0.01f), y(static_cast<size_t>(T * s.N));
      const double tq = best_time(3, [&] {
        fc::cpu::nvfp4_matmul_with_isa(isa, pool, x.data(), T, s.K, copy_view(s, 0), y.data(), s.N);
      });
      const fc::cpu::MatView v{bf16, fc::DType::kBF16, s.N, s.K, s.K};
      const double tb = best_time(
          3, [&] { fc::cpu::matmul_with_isa(isa, pool, x.data(), T, s.K, v, y.data(), s.N); });
      const double flop = 2.0 * static_cast<double>(T * s.K * s.N);
      std::printf("%-14s %6lld %6lld %4lld | %12.1f | %12.1f\n", s.name,
                  static_cast<long long>(s.K), static_cast<long long>(s.N),
                  static_cast<long long>(T), flop / tq / 1e9, flop / tb / 1e9);
    }
  }
  return 0;
}
