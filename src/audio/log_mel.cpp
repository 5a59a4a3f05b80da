#include "audio/log_mel.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>

#include "audio/fft.h"
#include "core/error.h"

namespace fc::audio {
namespace {

// Python's floor division for a possibly negative numerator and a positive divisor.
int64_t floor_div(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

double hz_to_mel(double f) {
  return 2595.0 * std::log10(1.0 + f / 700.0);
}
double mel_to_hz(double m) {
  return 700.0 * (std::pow(10.0, m / 2595.0) - 1.0);
}

// numpy.linspace(a, b, n) with the endpoint: a + i·(b − a)/(n − 1), the last value exactly b.
std::vector<double> linspace(double a, double b, int n) {
  std::vector<double> v(static_cast<size_t>(n));
  const double step = (b - a) / (n - 1);
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i * step + a;
  v.back() = b;
  return v;
}

void check_config(const LogMelConfig& c) {
  FC_CHECK(c.sample_rate > 0 && c.n_mels > 0 && c.frame_length > 1 && c.hop_length > 0,
           "log-mel config: sample_rate, n_mels, frame_length and hop_length must be positive");
  FC_CHECK(c.fft_length >= c.frame_length && (c.fft_length & (c.fft_length - 1)) == 0,
           "log-mel config: fft_length ", c.fft_length, " must be a power of two >= frame_length ",
           c.frame_length);
  FC_CHECK(c.pad_to_multiple_of > 0 && c.max_samples > 0,
           "log-mel config: pad_to_multiple_of and max_samples must be positive");
}

}  // namespace

std::vector<float> periodic_hann(int n) {
  std::vector<float> w(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    w[static_cast<size_t>(i)] =
        static_cast<float>(0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * i / n));
  return w;
}

std::vector<double> mel_filter_bank(const LogMelConfig& c) {
  check_config(c);
  const int bins = c.fft_length / 2 + 1, M = c.n_mels;
  const std::vector<double> mel =
      linspace(hz_to_mel(c.min_frequency), hz_to_mel(c.max_frequency), M + 2);
  std::vector<double> ff(mel.size());  // filter edge / centre frequencies (Hz)
  for (size_t i = 0; i < mel.size(); ++i) ff[i] = mel_to_hz(mel[i]);
  const std::vector<double> fft_hz = linspace(0.0, static_cast<double>(c.sample_rate / 2), bins);
  std::vector<double> fb(static_cast<size_t>(bins) * static_cast<size_t>(M));
  for (int k = 0; k < bins; ++k)
    for (int m = 0; m < M; ++m) {
      const double f = fft_hz[static_cast<size_t>(k)];
      const size_t j = static_cast<size_t>(m);
      const double down = -(ff[j] - f) / (ff[j + 1] - ff[j]);
      const double up = (ff[j + 2] - f) / (ff[j + 2] - ff[j + 1]);
      fb[static_cast<size_t>(k) * static_cast<size_t>(M) + j] = std::max(0.0, std::min(down, up));
    }
  return fb;
}

int64_t valid_mel_frames(int64_t n, const LogMelConfig& c) {
  n = std::min(n, c.max_samples);
  const int64_t t = floor_div(n + c.frame_length / 2 - (c.frame_length + 1), c.hop_length) + 1;
  return std::max<int64_t>(t, 0);
}

int64_t subsampled_frames(int64_t t) {
  return t <= 0 ? 0 : (t - 1) / 2 + 1;
}

int64_t audio_soft_tokens(int64_t n, const LogMelConfig& c, int64_t max_tokens) {
  return std::min(subsampled_frames(subsampled_frames(valid_mel_frames(n, c))), max_tokens);
}

LogMel log_mel(const float* x, int64_t n, const LogMelConfig& c) {
  check_config(c);
  FC_CHECK(n >= 0, "log_mel: negative sample count");
  n = std::min(n, c.max_samples);
  const int64_t padded =
      (n + c.pad_to_multiple_of - 1) / c.pad_to_multiple_of * c.pad_to_multiple_of;
  const int64_t left = c.frame_length / 2;
  LogMel out;
  out.n_mels = c.n_mels;
  out.frames =
      std::max<int64_t>(floor_div(padded + left - (c.frame_length + 1), c.hop_length) + 1, 0);
  out.valid = valid_mel_frames(n, c);
  out.data.assign(static_cast<size_t>(out.frames * c.n_mels), 0.0f);
  if (out.valid == 0) return out;

  const std::vector<float> win = periodic_hann(c.frame_length);
  const std::vector<double> fb = mel_filter_bank(c);
  const Fft fft(c.fft_length);
  const int bins = c.fft_length / 2 + 1, M = c.n_mels;
  // Each triangular filter is non-zero on a few bins only: sum over [k_lo[m], k_hi[m]) in
  // ascending k (skipped terms are exact zeros, so the sums equal the dense product's).
  std::vector<int> k_lo(static_cast<size_t>(M), 0), k_hi(static_cast<size_t>(M), 0);
  for (int m = 0; m < M; ++m) {
    int lo = bins, hi = 0;
    for (int k = 0; k < bins; ++k)
      if (fb[static_cast<size_t>(k) * static_cast<size_t>(M) + static_cast<size_t>(m)] != 0.0) {
        lo = std::min(lo, k);
        hi = k + 1;
      }
    k_lo[static_cast<size_t>(m)] = lo;
    k_hi[static_cast<size_t>(m)] = std::max(lo, hi);
  }
  std::vector<std::complex<double>> buf(static_cast<size_t>(c.fft_length));
  std::vector<double> mag(static_cast<size_t>(bins));
  for (int64_t i = 0; i < out.valid; ++i) {
    // Frame i reads padded-wave samples [hop·i, hop·i + frame), i.e. x[hop·i − left + j].
    std::fill(buf.begin(), buf.end(), std::complex<double>(0.0, 0.0));
    for (int j = 0; j < c.frame_length; ++j) {
      const int64_t s = i * c.hop_length - left + j;
      const float v = s >= 0 && s < n ? x[s] : 0.0f;
      buf[static_cast<size_t>(j)] = static_cast<double>(v * win[static_cast<size_t>(j)]);
    }
    fft.forward(buf.data());
    for (int k = 0; k < bins; ++k)
      mag[static_cast<size_t>(k)] = std::abs(buf[static_cast<size_t>(k)]);
    float* dst = out.data.data() + i * M;
    for (int m = 0; m < M; ++m) {
      double mel = 0.0;
      for (int k = k_lo[static_cast<size_t>(m)]; k < k_hi[static_cast<size_t>(m)]; ++k)
        mel += mag[static_cast<size_t>(k)] *
               fb[static_cast<size_t>(k) * static_cast<size_t>(M) + static_cast<size_t>(m)];
      dst[m] = static_cast<float>(std::log(mel + c.mel_floor));
    }
  }
  return out;
}

}  // namespace fc::audio
