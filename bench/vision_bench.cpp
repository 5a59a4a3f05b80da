// Times the vision tower (encoder + pooler + embed_vision) on the CPU for one image at a real
// tower geometry with synthetic BF16 weights, and prints its FLOP count and achieved GFLOP/s.
// Compare with bench_matmul's figure for the machine's matmul peak. Not a test: figures only.
//   bench_vision [31b|e4b] [soft_tokens=280] [threads] [repeats=2]
// The checkpoint (~1.1 GB for 31b) is written to $TMPDIR/fourcast-vision-bench-<shape> once.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "bench/bench_util.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "model/gemma4/config.h"
#include "model/gemma4/synth.h"
#include "model/gemma4/synth_vision.h"
#include "model/gemma4/vision.h"

int main(int argc, char** argv) {
  using namespace fc;
  const std::string shape = argc > 1 ? argv[1] : "31b";
  const int tokens = argc > 2 ? std::atoi(argv[2]) : 280;
  const int threads = argc > 3 ? std::atoi(argv[3]) : hardware_threads();
  const int repeats = argc > 4 ? std::atoi(argv[4]) : 2;
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/fourcast-vision-bench-" + shape;
  nlohmann::json cfg_json = gemma4::shape_config(shape);
  const gemma4::Config cfg = gemma4::parse_config(cfg_json, "bench");
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    std::vector<TensorSource> ts;
    uint64_t salt = 12345;
    gemma4::add_synth_vision(cfg, 0.02f, salt, ts);
    std::filesystem::create_directories(dir);
    write_checkpoint(dir, ts, uint64_t{8} << 30, {{"format", "pt"}});
  }
  ThreadPool pool(threads);
  cpu::CpuBackend be(pool);
  auto ckpt = Checkpoint::open_dir(dir);
  gemma4::VisionTower tower(cfg, *ckpt, be);
  const gemma4::VisionConfig& v = tower.config();
  // A grid of `tokens` pooled slots, close to a 3:4 image: grid_h · grid_w = 9 · tokens.
  int gh = 3, gw = 3;
  for (int a = 1; a <= tokens; ++a)
    if (tokens % a == 0 && a * a * 4 <= tokens * 3) gh = 3 * a, gw = 3 * (tokens / a);
  gemma4::MediaInput in;
  in.modality = "image";
  in.grid_h = gh;
  in.grid_w = gw;
  in.num_tokens = gh * gw / 9;
  const int P = gh * gw, pd = 3 * v.patch_size * v.patch_size;
  in.features.resize(static_cast<size_t>(P) * pd);
  for (size_t i = 0; i < in.features.size(); ++i)
    in.features[i] = static_cast<float>(i % 251) / 250;
  for (int y = 0; y < gh; ++y)
    for (int x = 0; x < gw; ++x) in.positions.insert(in.positions.end(), {x, y});
  std::vector<float> out(static_cast<size_t>(in.num_tokens) * cfg.hidden_size);
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = bench::Clock::now();
    tower.encode({&in}, out.data());
    best = std::min(best, bench::seconds_since(t0));
  }
  const double flops = gemma4::VisionTower::flops(v, cfg.hidden_size, gh, gw);
  std::printf(
      "vision tower %s: d %d, %d layers, %dx%d patches (%d px x %d px) -> %d soft tokens, "
      "%d threads\n  best of %d: %.2f s, %.1f GFLOP, %.1f GFLOP/s\n",
      shape.c_str(), v.hidden_size, v.num_hidden_layers, gh, gw, gh * v.patch_size,
      gw * v.patch_size, in.num_tokens, threads, repeats, best, flops / 1e9, flops / 1e9 / best);
  return 0;
}
