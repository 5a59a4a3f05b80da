// The memory read bandwidth probe of bench_model (bench_util.h BandwidthProbe: a multi-threaded
// sum over a buffer first touched by its readers) as a process of its own, so that a run of
// another program (bench/vs_llamacpp.sh brackets llama-bench with it) can be compared with the
// bandwidth measured just before and after it. Not a test: it prints one figure.
//   bench_bandwidth [--threads N] [--mib M] [--reps R]   (defaults: all cores, 1024 MiB, 3)
// Prints "bandwidth GB/s: X" (best of R passes, 1e9 bytes/s).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench/bench_util.h"
#include "core/thread_pool.h"

namespace {

// The value after `name`, parsed as a positive integer; dflt when absent. Exits with status 2
// naming the flag when the value is not a positive integer.
long positive_flag(int argc, char** argv, const char* name, long dflt) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], name) != 0) continue;
    char* end = nullptr;
    const long v = i + 1 < argc ? std::strtol(argv[i + 1], &end, 10) : 0;
    if (i + 1 >= argc || *end != '\0' || v <= 0) {
      std::fprintf(stderr, "bench_bandwidth: %s needs a positive integer\n", name);
      std::exit(2);
    }
    return v;
  }
  return dflt;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i];
    if (a != "--threads" && a != "--mib" && a != "--reps") {
      std::fprintf(stderr, "bench_bandwidth: unknown argument '%s' (--threads, --mib, --reps)\n",
                   argv[i]);
      return 2;
    }
  }
  const long threads = positive_flag(argc, argv, "--threads", fc::hardware_threads());
  const long mib = positive_flag(argc, argv, "--mib", 1024);
  const long reps = positive_flag(argc, argv, "--reps", 3);
  fc::ThreadPool pool(static_cast<int>(threads));
  fc::bench::BandwidthProbe probe(pool, static_cast<size_t>(mib) << 20);
  const double bw = probe.measure(static_cast<int>(reps));
  std::printf("bandwidth GB/s: %.2f (%ld MiB, %d threads, best of %ld)\n", bw / 1e9, mib,
              pool.size(), reps);
  if (probe.checksum() == 42) std::printf(" ");  // keep the probe's reads observable
  return 0;
}
