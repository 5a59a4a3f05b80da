// The radix-2 FFT against the O(n²) DFT definition, at every power-of-two size up to 1024.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "audio/fft.h"
#include "core/error.h"

namespace fc::audio {
namespace {

TEST(Fft, MatchesTheDftDefinition) {
  std::mt19937 rng(5);
  std::normal_distribution<double> nd;
  for (int n = 1; n <= 1024; n *= 2) {
    std::vector<std::complex<double>> x(static_cast<size_t>(n));
    for (auto& v : x) v = {nd(rng), nd(rng)};
    const auto want = dft_reference(x);
    Fft fft(n);
    fft.forward(x.data());
    double err = 0, scale = 0;
    for (int k = 0; k < n; ++k) {
      err = std::max(err, std::abs(x[static_cast<size_t>(k)] - want[static_cast<size_t>(k)]));
      scale = std::max(scale, std::abs(want[static_cast<size_t>(k)]));
    }
    EXPECT_LE(err, 1e-12 * std::max(1.0, scale)) << "n = " << n;
  }
}

TEST(Fft, RealCosineLandsInItsBins) {
  const int n = 512;
  std::vector<std::complex<double>> x(n);
  for (int j = 0; j < n; ++j) x[static_cast<size_t>(j)] = std::cos(2 * M_PI * 37 * j / n);
  Fft(n).forward(x.data());
  for (int k = 0; k < n; ++k) {
    const double want = (k == 37 || k == n - 37) ? n / 2.0 : 0.0;
    EXPECT_NEAR(std::abs(x[static_cast<size_t>(k)]), want, 1e-9) << k;
  }
}

TEST(Fft, RejectsSizesThatAreNotPowersOfTwo) {
  EXPECT_THROW(Fft(0), Error);
  EXPECT_THROW(Fft(320), Error);
}

}  // namespace
}  // namespace fc::audio
