// GPU figures of the CUDA backend (built with it only): the device's copy bandwidth (the roofline
// every decode figure is compared with, measured in the same run), NVFP4 GEMV and paged-attention
// microbenchmarks as achieved bytes/s, and per checkpoint: decode at a given context for several
// batch sizes (weights + KV bytes per step against the copy bandwidth) and one prefill. Not a
// test: it prints figures (scripts/gpu/device-check.sh runs it).
//   bench_gpu [--model DIR ...] [--context 4096] [--batches 1,4,16,64] [--steps 24]
//             [--prefill 2048] [--kv-dtype bf16[,fp8]] [--micro] [--graphs 0|1]
// Decode runs Model::forward directly on hand-made block tables (the KV holds zeros, not a real
// prompt: timing does not depend on the values), so a 4K context needs no 4K prefill per request.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "bench/bench_util.h"
#include "bench/model_bytes.h"
#include "core/error.h"
#include "kv/kv_storage.h"
#include "model/gemma4/model.h"

namespace {

using namespace fc;

const char* flag(int argc, char** argv, const char* name, const char* dflt) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], name)) return argv[i + 1];
  return dflt;
}
bool has(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], name)) return true;
  return false;
}
std::vector<int> int_list(const std::string& s) {
  std::vector<int> v;
  size_t p = 0;
  while (p < s.size()) {
    const size_t q = s.find(',', p);
    v.push_back(std::atoi(s.substr(p, q == std::string::npos ? std::string::npos : q - p).c_str()));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  return v;
}

// Seconds per call of fn over `iters` calls, after one warm-up call (median of `reps` batches).
template <typename F>
double time_gpu(cuda::CudaBackend& be, int reps, int iters, F&& fn) {
  fn();
  be.synchronize();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = bench::Clock::now();
    for (int i = 0; i < iters; ++i) fn();
    be.synchronize();
    t.push_back(bench::seconds_since(t0) / iters);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Device-to-device copy of 1 GiB: bytes read + written per second (the weight-streaming roofline).
double copy_bandwidth(cuda::CudaBackend& be) {
  const size_t n = size_t{1} << 30;
  void* a = be.alloc(n);
  void* b = be.alloc(n);
  std::vector<uint8_t> h(n / 64, 1);
  for (size_t off = 0; off < n; off += h.size())
    be.to_device(static_cast<char*>(a) + off, h.data(), h.size());
  const double s = time_gpu(be, 5, 10, [&] { be.copy(b, a, n); });
  be.free(a);
  be.free(b);
  return 2.0 * static_cast<double>(n) / s;
}

// A random NVFP4 weight [N, K] on the device (codes uniform, block scales in [2^-3, 2^1]).
struct HostNvfp4 {
  std::vector<uint8_t> codes, scales;
  Weight w;
};
HostNvfp4 random_nvfp4(int64_t N, int64_t K, uint32_t seed) {
  HostNvfp4 h;
  std::mt19937 g(seed);
  h.codes.resize(static_cast<size_t>(N * K / 2));
  h.scales.resize(static_cast<size_t>(N * K / 16));
  for (uint8_t& c : h.codes) c = static_cast<uint8_t>(g());
  for (uint8_t& s : h.scales) s = static_cast<uint8_t>(0x20 + g() % 0x20);  // E4M3 2^-3 .. 2^1
  h.w.data = h.codes.data();
  h.w.dtype = DType::kU8;
  h.w.rows = N;
  h.w.cols = K;
  h.w.ld = K / 2;
  h.w.format = WeightFormat::kNvfp4;
  h.w.block_scale = h.scales.data();
  h.w.scale_ld = K / 16;
  h.w.global_scale = 1.0f / 448.0f;
  h.w.name = "bench.nvfp4";
  return h;
}

void micro_nvfp4(cuda::CudaBackend& be, double bw) {
  struct Shape {
    const char* name;
    int64_t N, K;
  };
  // The 31B's projections (hidden 5376, 32 heads x 256, MLP 21504).
  const Shape shapes[] = {{"q_proj 8192x5376", 8192, 5376},
                          {"gate 21504x5376", 21504, 5376},
                          {"down 5376x21504", 5376, 21504}};
  std::printf("\nNVFP4 linear (W4A16), weights read once per call:\n");
  std::printf("%-20s %4s %10s %10s %7s\n", "shape", "T", "us/call", "GB/s", "of copy");
  for (const Shape& sh : shapes) {
    HostNvfp4 h = random_nvfp4(sh.N, sh.K, 11);
    const Weight w = be.upload(h.w);
    for (int T : {1, 4, 16, 64}) {
      std::vector<float> xh(static_cast<size_t>(T * sh.K));
      std::mt19937 g(3);
      std::normal_distribution<float> d;
      for (float& v : xh) v = d(g);
      float* x = static_cast<float*>(be.alloc(xh.size() * 4));
      float* y = static_cast<float*>(be.alloc(static_cast<size_t>(T * sh.N) * 4));
      be.to_device(x, xh.data(), xh.size() * 4);
      const double s = time_gpu(be, 5, 20, [&] { be.linear(x, T, sh.K, w, y, sh.N, false); });
      const double gbs = static_cast<double>(w.bytes()) / s;
      std::printf("%-20s %4d %10.1f %10.1f %6.0f%%\n", sh.name, T, s * 1e6, gbs / 1e9,
                  100.0 * gbs / bw);
      be.free(x);
      be.free(y);
    }
  }
}

// Paged attention decode: B sequences, one query each, at `ctx` cached positions.
void micro_attention(cuda::CudaBackend& be, double bw) {
  struct Case {
    const char* name;
    int n_heads, n_kv, hd, window;
  };
  const Case cases[] = {{"hd256 sliding 1024", 32, 16, 256, 1024}, {"hd512 full", 32, 4, 512, 0}};
  const int ctx = 4096, B = 16;
  std::printf("\npaged attention decode, context %d, block %d, KV bytes read per call:\n", ctx, B);
  std::printf("%-20s %5s %4s %6s %10s %10s %7s\n", "case", "kv", "seqs", "GQA", "us/call", "GB/s",
              "of copy");
  for (const Case& c : cases) {
    for (DType kvd : {DType::kBF16, DType::kF8_E4M3}) {
      for (int S : {1, 16}) {
        const int blocks_per_seq = (ctx + B - 1) / B;
        const int64_t nblocks = int64_t{S} * blocks_per_seq;
        const int64_t esz = dtype_bits(kvd) / 8;
        const size_t cache_bytes = static_cast<size_t>(nblocks * B * c.n_kv * c.hd * esz);
        void* kc = be.alloc(cache_bytes);
        void* vc = be.alloc(cache_bytes);
        std::vector<uint8_t> zero(cache_bytes / 16 + 1, 0x11);
        for (size_t off = 0; off < cache_bytes; off += zero.size()) {
          const size_t n = std::min(zero.size(), cache_bytes - off);
          be.to_device(static_cast<char*>(kc) + off, zero.data(), n);
          be.to_device(static_cast<char*>(vc) + off, zero.data(), n);
        }
        std::vector<int32_t> tables, toff, qb, nq, p0;
        for (int s = 0; s < S; ++s) {
          toff.push_back(static_cast<int32_t>(tables.size()));
          for (int b = 0; b < blocks_per_seq; ++b) tables.push_back(s * blocks_per_seq + b);
          qb.push_back(s);
          nq.push_back(1);
          p0.push_back(ctx - 1);
        }
        auto dev = [&](const std::vector<int32_t>& v) {
          int32_t* d = static_cast<int32_t*>(be.alloc(v.size() * 4));
          be.to_device(d, v.data(), v.size() * 4);
          return d;
        };
        int32_t *dt = dev(tables), *dto = dev(toff), *dqb = dev(qb), *dnq = dev(nq), *dp0 = dev(p0);
        const int64_t qd = int64_t{c.n_heads} * c.hd;
        std::vector<float> qh(static_cast<size_t>(S * qd), 0.01f);
        float* q = static_cast<float*>(be.alloc(qh.size() * 4));
        float* o = static_cast<float*>(be.alloc(qh.size() * 4));
        be.to_device(q, qh.data(), qh.size() * 4);
        AttentionArgs a;
        a.q = q;
        a.ldq = qd;
        a.out = o;
        a.ldo = qd;
        a.k_cache = kc;
        a.v_cache = vc;
        a.kv_dtype = kvd;
        a.n_heads = c.n_heads;
        a.n_kv_heads = c.n_kv;
        a.head_dim = c.hd;
        a.block_size = B;
        a.sliding_window = c.window;
        a.n_seqs = S;
        a.q_begin = dqb;
        a.n_q = dnq;
        a.pos0 = dp0;
        a.block_tables = dt;
        a.table_offset = dto;
        const double s = time_gpu(be, 5, 20, [&] { be.attention(a); });
        const int64_t keys = c.window > 0 ? std::min(ctx, c.window) : ctx;
        const double bytes = static_cast<double>(S) * keys * c.n_kv * c.hd * esz * 2;
        std::printf("%-20s %5s %4d %6d %10.1f %10.1f %6.0f%%\n", c.name,
                    kvd == DType::kBF16 ? "bf16" : "fp8", S, c.n_heads / c.n_kv, s * 1e6,
                    bytes / s / 1e9, 100.0 * bytes / s / bw);
        for (void* p : {static_cast<void*>(q), static_cast<void*>(o), kc, vc,
                        static_cast<void*>(dt), static_cast<void*>(dto), static_cast<void*>(dqb),
                        static_cast<void*>(dnq), static_cast<void*>(dp0)})
          be.free(p);
      }
    }
  }
}

struct DecodeResult {
  int batch = 0;
  double step_s = 0;
  int64_t bytes = 0;  // weights + KV per step
};

// Decode steps for `batch` sequences at `ctx` cached positions, each step one token per sequence.
DecodeResult bench_decode(gemma4::Model& model, cuda::CudaBackend& be, int batch, int ctx,
                          int steps, DType kv_dtype) {
  const int B = 16;
  std::vector<kv::GroupLayout> groups = model.kv_layout();
  // Blocks per sequence and group: the full group holds the whole context; a sliding group only
  // the window before the first step plus the steps (older table entries stay -1, released).
  std::vector<int> per_seq, first_live;
  for (const kv::GroupLayout& g : groups) {
    const int total = (ctx + steps + B - 1) / B;
    const int lo = g.sliding_window > 0 ? std::max(0, ctx - g.sliding_window) / B : 0;
    per_seq.push_back(total - lo);
    first_live.push_back(lo);
  }
  std::vector<int> nblocks;
  for (int n : per_seq) nblocks.push_back(n * batch);
  kv::KVStorage kv(be, groups, B, nblocks, kv_dtype);
  // Zeroed KV: uninitialised memory could hold NaN/Inf patterns, zeros are a plain valid state.
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const int64_t per_layer_token = kv::KVStorage::bytes_per_token(groups[gi], kv_dtype) /
                                    static_cast<int64_t>(groups[gi].layers.size()) / 2;
    const size_t bytes = static_cast<size_t>(per_layer_token * nblocks[gi] * B);
    for (int l : groups[gi].layers) {
      be.zero(kv.k(l), bytes);
      be.zero(kv.v(l), bytes);
    }
  }
  std::vector<std::vector<std::vector<int32_t>>> tables(static_cast<size_t>(batch));
  for (int s = 0; s < batch; ++s)
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      std::vector<int32_t> t(static_cast<size_t>(first_live[gi]), -1);
      for (int b = 0; b < per_seq[gi]; ++b) t.push_back(s * per_seq[gi] + b);
      tables[static_cast<size_t>(s)].push_back(std::move(t));
    }
  std::vector<int32_t> tok(static_cast<size_t>(batch));
  for (int s = 0; s < batch; ++s) tok[static_cast<size_t>(s)] = 100 + s;
  gemma4::ForwardOutput out;
  auto step = [&](int i) {
    gemma4::ForwardBatch fb;
    for (int s = 0; s < batch; ++s) {
      gemma4::SeqInput si;
      si.tokens = &tok[static_cast<size_t>(s)];
      si.n = 1;
      si.pos0 = ctx + i;
      for (auto& t : tables[static_cast<size_t>(s)]) si.block_tables.push_back(&t);
      si.logit_rows = {0};
      fb.seqs.push_back(std::move(si));
    }
    model.forward(fb, kv, out);
  };
  step(0);  // warm-up: scratch buffers, cuBLAS handles
  const auto t0 = bench::Clock::now();
  for (int i = 1; i < steps; ++i) step(i);
  DecodeResult r;
  r.batch = batch;
  r.step_s = bench::seconds_since(t0) / (steps - 1);
  r.bytes =
      bench::decode_weight_bytes(model) + batch * bench::decode_kv_bytes(model, ctx, kv_dtype);
  return r;
}

// One prefill of n tokens at position 0 (after a warm-up prefill of the same size): tok/s.
double bench_prefill(gemma4::Model& model, cuda::CudaBackend& be, int n, DType kv_dtype) {
  const int B = 16;
  std::vector<int> nblocks;
  for (size_t g = 0; g < model.kv_layout().size(); ++g) nblocks.push_back((n + B - 1) / B);
  kv::KVStorage kv(be, model.kv_layout(), B, nblocks, kv_dtype);
  std::vector<std::vector<int32_t>> tables(model.kv_layout().size());
  for (auto& t : tables)
    for (int b = 0; b < (n + B - 1) / B; ++b) t.push_back(b);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  std::mt19937 g(5);
  for (int32_t& t : ids)
    t = 3 + static_cast<int32_t>(g() % 200000u % (model.config().vocab_size - 3));
  gemma4::ForwardOutput out;
  auto run = [&] {
    gemma4::ForwardBatch fb;
    gemma4::SeqInput si;
    si.tokens = ids.data();
    si.n = n;
    si.pos0 = 0;
    for (auto& t : tables) si.block_tables.push_back(&t);
    si.logit_rows = {n - 1};
    fb.seqs.push_back(std::move(si));
    model.forward(fb, kv, out);
  };
  run();
  const auto t0 = bench::Clock::now();
  run();
  return n / bench::seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> dirs;
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], "--model")) dirs.push_back(argv[i + 1]);
  if (has(argc, argv, "--help")) {
    std::printf(
        "usage: bench_gpu [--model DIR ...] [--context 4096] [--batches 1,4,16,64] [--steps 24]\n"
        "                 [--prefill 2048] [--kv-dtype bf16[,fp8]] [--micro] [--graphs 0|1]\n");
    return 0;
  }
  const int ctx = std::atoi(flag(argc, argv, "--context", "4096"));
  const std::vector<int> batches = int_list(flag(argc, argv, "--batches", "1,4,16,64"));
  const int steps = std::max(2, std::atoi(flag(argc, argv, "--steps", "24")));
  const int prefill = std::atoi(flag(argc, argv, "--prefill", "2048"));
  // KV cache dtypes to run the decode table with, e.g. "bf16,fp8".
  std::vector<std::string> kv_names;
  {
    const std::string list = flag(argc, argv, "--kv-dtype", "bf16");
    size_t p = 0;
    while (p <= list.size()) {
      const size_t q = std::min(list.find(',', p), list.size());
      kv_names.push_back(list.substr(p, q - p));
      p = q + 1;
    }
  }
  for (const std::string& k : kv_names)
    if (k != "bf16" && k != "fp8") {
      std::fprintf(stderr, "bench_gpu: --kv-dtype %s: not bf16 or fp8\n", k.c_str());
      return 2;
    }
  try {
    if (cuda::device_count() == 0) {
      std::fprintf(stderr, "bench_gpu: no CUDA GPU (%s)\n", cuda::device_error().c_str());
      return 1;
    }
    cuda::CudaBackend be;
    std::printf("device: %s\n", be.device_description().c_str());
    const double bw = copy_bandwidth(be);
    std::printf("device-to-device copy, 1 GiB: %.1f GB/s (read + written)\n", bw / 1e9);
    if (has(argc, argv, "--micro")) {
      micro_nvfp4(be, bw);
      micro_attention(be, bw);
    }
    for (const std::string& dir : dirs) {
      const auto tl = bench::Clock::now();
      gemma4::ModelOptions mo;
      mo.bf16_embed_scale = true;
      mo.graphs = std::atoi(flag(argc, argv, "--graphs", "1")) != 0;
      gemma4::Model model(gemma4::load_config(dir), Checkpoint::open_dir(dir), be, mo);
      const int64_t wb = bench::decode_weight_bytes(model);
      std::printf(
          "\nmodel %s: %.2f B params, %lld NVFP4 linears, %.2f GB read per decode step, "
          "load %.1f s\n",
          dir.c_str(), model.weights().parameter_count / 1e9,
          static_cast<long long>(model.weights().nvfp4_linears), wb / 1e9,
          bench::seconds_since(tl));
      for (const std::string& kvs : kv_names) {
        const DType kv_dtype = kvs == "fp8" ? DType::kF8_E4M3 : DType::kBF16;
        std::printf("decode at context %d, KV %s, %d steps, CUDA graphs %s:\n", ctx, kvs.c_str(),
                    steps, mo.graphs ? "on" : "off");
        std::printf("%6s %10s %10s %12s %12s %9s %9s\n", "batch", "ms/step", "tok/s",
                    "weights GB/s", "w+KV GB/s", "w of copy", "w+KV/copy");
        for (int b : batches) {
          const DeviceMemory mem = *be.memory();
          int64_t need = 0;
          for (const kv::GroupLayout& g : model.kv_layout()) {
            const int64_t tokens = g.sliding_window > 0
                                       ? std::min<int64_t>(ctx, g.sliding_window) + steps + 32
                                       : ctx + steps + 16;
            need += kv::KVStorage::bytes_per_token(g, kv_dtype) * tokens * b;
          }
          if (need > mem.free - (int64_t{2} << 30)) {
            std::printf("%6d   skipped: KV needs %.1f GB, %.1f GB free\n", b, need / 1e9,
                        mem.free / 1e9);
            continue;
          }
          const DecodeResult r = bench_decode(model, be, b, ctx, steps, kv_dtype);
          std::printf("%6d %10.2f %10.1f %12.1f %12.1f %8.0f%% %8.0f%%\n", b, r.step_s * 1e3,
                      b / r.step_s, wb / r.step_s / 1e9, r.bytes / r.step_s / 1e9,
                      100.0 * wb / r.step_s / bw, 100.0 * r.bytes / r.step_s / bw);
          std::fflush(stdout);
        }
      }
      std::printf("CUDA graphs: %lld recorded, %lld steps replayed\n",
                  static_cast<long long>(model.graph_stats().captures),
                  static_cast<long long>(model.graph_stats().replays));
      if (prefill > 0) {
        const DType kv_dtype = kv_names[0] == "fp8" ? DType::kF8_E4M3 : DType::kBF16;
        const double tps = bench_prefill(model, be, prefill, kv_dtype);
        std::printf("prefill %d tokens: %.0f tok/s\n", prefill, tps);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
