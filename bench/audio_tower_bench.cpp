// Times the Gemma 4 audio tower at the released E2B/E4B geometry (synthetic BF16 weights written
// by fourcast synth's audio writer) on 30 s of audio: the log-mel front end, then encode() (750
// soft tokens), with multiply-adds counted from the shapes (AudioTower::macs) and GFLOP/s.
//
//   bench_audio_tower [--threads N] [--reps R] [--seconds S] [--dir /tmp/fc-audio-bench]
#include <time.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "audio/log_mel.h"
#include "backend/cpu/cpu_backend.h"
#include "bench/bench_util.h"
#include "io/safetensors.h"
#include "model/gemma4/audio_tower.h"
#include "model/gemma4/synth.h"
#include "model/gemma4/synth_audio.h"

using namespace fc;

namespace {
// CPU seconds of this process (all threads): the wall clock is unreliable on a shared machine.
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}
}  // namespace

int main(int argc, char** argv) {
  int threads = 2, reps = 3;
  double secs = 30.0;
  std::string dir = "/tmp/fc-audio-bench";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (k == "--reps")
      reps = std::atoi(argv[i + 1]);
    else if (k == "--seconds")
      secs = std::atof(argv[i + 1]);
    else if (k == "--dir")
      dir = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  try {
    // E4B: text hidden 2560 (E2B: 1536; the tower itself is the same).
    const nlohmann::json root = gemma4::shape_config("e4b");
    const int text_hidden = root["text_config"]["hidden_size"].get<int>();
    const std::string ckdir = dir + "/e4b-audio";
    if (!std::filesystem::exists(ckdir + "/model.safetensors")) {
      std::vector<TensorSource> ts;
      uint64_t salt = gemma4::synth_mix(1);
      const int64_t n = gemma4::add_audio_tensors(root, text_hidden, 0.02f, salt, ts);
      std::filesystem::create_directories(ckdir);
      write_safetensors(ckdir + "/model.safetensors", ts);
      std::printf("wrote %lld audio parameters to %s\n", static_cast<long long>(n), ckdir.c_str());
    }
    const gemma4::AudioConfig cfg = *gemma4::parse_audio_config(root, "e4b");
    ThreadPool pool(threads);
    cpu::CpuBackend be(pool);
    std::shared_ptr<const Checkpoint> ckpt = Checkpoint::open_dir(ckdir);
    gemma4::AudioTower tower(cfg, text_hidden, ckpt, be, quant::QuantConfig{});

    const int64_t n = static_cast<int64_t>(secs * 16000);
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)  // a chirp with some noise-like overtones
      x[static_cast<size_t>(i)] = static_cast<float>(0.4 * std::sin(0.001 * i + 1e-7 * i * i) +
                                                     0.1 * std::sin(0.37 * i * std::sin(1e-4 * i)));
    audio::LogMel f;
    const double t_fe = bench::best_time(reps, [&] { f = audio::log_mel(x.data(), n); });
    gemma4::AudioEncoding e;
    tower.encode(f.data.data(), f.valid);  // warm-up (scratch growth, page faults)
    double cpu_tw = 1e30;
    const double t_tw = bench::best_time(reps, [&] {
      const double c0 = cpu_seconds();
      e = tower.encode(f.data.data(), f.valid);
      cpu_tw = std::min(cpu_tw, cpu_seconds() - c0);
    });
    const double flops = 2.0 * static_cast<double>(tower.macs(f.valid));
    double ss = 0;
    for (float v : e.embeds) ss += static_cast<double>(v) * v;
    std::printf("audio tower, E4B geometry (hidden %d, %d layers, output %d -> %d), %d threads\n",
                cfg.hidden_size, cfg.num_hidden_layers, cfg.output_proj_dims, text_hidden, threads);
    std::printf("  %.1f s of audio: %lld mel frames -> %lld soft tokens (rms %.3g)\n", secs,
                static_cast<long long>(f.valid), static_cast<long long>(e.n),
                std::sqrt(ss / static_cast<double>(e.embeds.size())));
    std::printf("  log-mel front end  %8.1f ms\n", t_fe * 1e3);
    std::printf("  tower + embed_audio %7.1f ms  %.1f GFLOP  %.1f GFLOP/s  (best of %d)\n",
                t_tw * 1e3, flops * 1e-9, flops * 1e-9 / t_tw, reps);
    std::printf("  tower CPU time      %7.1f s over %d threads: %.1f GFLOP per CPU-second\n",
                cpu_tw, threads, flops * 1e-9 / cpu_tw);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "bench_audio_tower: %s\n", ex.what());
    return 1;
  }
  return 0;
}
