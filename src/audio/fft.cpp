#include "audio/fft.h"

#include <cmath>
#include <numbers>
#include <utility>

#include "core/error.h"

namespace fc::audio {

Fft::Fft(int n) : n_(n) {
  FC_CHECK(n >= 1 && (n & (n - 1)) == 0, "Fft: size ", n, " is not a power of two");
  int bits = 0;
  while ((1 << bits) < n) ++bits;
  rev_.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    int r = 0;
    for (int b = 0; b < bits; ++b) r |= ((i >> b) & 1) << (bits - 1 - b);
    rev_[static_cast<size_t>(i)] = r;
  }
  twiddle_.resize(static_cast<size_t>(n / 2));
  for (int k = 0; k < n / 2; ++k) {
    const double a = -2.0 * std::numbers::pi * k / n;
    twiddle_[static_cast<size_t>(k)] = {std::cos(a), std::sin(a)};
  }
}

void Fft::forward(std::complex<double>* x) const {
  for (int i = 0; i < n_; ++i) {
    const int r = rev_[static_cast<size_t>(i)];
    if (i < r) std::swap(x[i], x[r]);
  }
  // Butterflies of width `len`: the twiddle for position j is e^(-2πi j/len) = twiddle_[j·n/len].
  for (int len = 2; len <= n_; len <<= 1) {
    const int half = len / 2, step = n_ / len;
    for (int s = 0; s < n_; s += len)
      for (int j = 0; j < half; ++j) {
        const std::complex<double> t = twiddle_[static_cast<size_t>(j * step)] * x[s + j + half];
        x[s + j + half] = x[s + j] - t;
        x[s + j] += t;
      }
  }
}

std::vector<std::complex<double>> dft_reference(const std::vector<std::complex<double>>& in) {
  const size_t n = in.size();
  std::vector<std::complex<double>> out(n);
  for (size_t k = 0; k < n; ++k) {
    std::complex<double> acc = 0;
    for (size_t j = 0; j < n; ++j) {
      // (j·k) mod n keeps the angle small, so cos/sin stay accurate for large products.
      const double a =
          -2.0 * std::numbers::pi * static_cast<double>((j * k) % n) / static_cast<double>(n);
      acc += in[j] * std::complex<double>(std::cos(a), std::sin(a));
    }
    out[k] = acc;
  }
  return out;
}

}  // namespace fc::audio
