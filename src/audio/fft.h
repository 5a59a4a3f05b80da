// A radix-2 complex FFT in double precision (power-of-two sizes), and the O(n²) DFT it is tested
// against. The audio front end needs one 512-point real transform per 10 ms frame; written here
// rather than linking FFTW (GPL) for one fixed size (docs/design.md, "Audio front end").
#pragma once

#include <complex>
#include <cstdint>
#include <vector>

namespace fc::audio {

class Fft {
 public:
  explicit Fft(int n);  // n a power of two >= 1; throws fc::Error otherwise
  int size() const { return n_; }
  // In place: X[k] = Σ_j x[j] · e^(-2πi jk/n) (no normalisation, numpy.fft.fft's sign).
  void forward(std::complex<double>* x) const;

 private:
  int n_;
  std::vector<int> rev_;                       // bit-reversal permutation
  std::vector<std::complex<double>> twiddle_;  // e^(-2πi k/n), k < n/2
};

// The definition, for tests: out[k] = Σ_j in[j] · e^(-2πi jk/n).
std::vector<std::complex<double>> dft_reference(const std::vector<std::complex<double>>& in);

}  // namespace fc::audio
