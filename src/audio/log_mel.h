// The log-mel front end of Gemma 4's audio tower, exactly as transformers'
// Gemma4AudioFeatureExtractor computes it (models/gemma4/feature_extraction_gemma4.py; spec
// ../shared/spec/multimodal.md §5.1), and the number of audio soft tokens a clip becomes (§5.2).
//
// For one clip of n samples at 16 kHz (truncated to max_samples = 30 s):
//   padded length  P = n rounded up to a multiple of 128 (HF's pad_to_multiple_of)
//   wave           w = 160 zeros ("semicausal") + x + zeros up to P
//   frames         T = (P + 160 − 321) // 160 + 1, frame i = w[160 i, 160 i + 320)
//   valid frames   V = (n + 160 − 321) // 160 + 1: the frame's 321-sample window ends inside x
//   feature[i, m]  = log(Σ_k |rfft512(frame_i · hann320)[k]| · mel[k, m] + 1e-3), rows >= V zero
// The window product is fp32, as HF's float32 arrays make it (done in double instead, the quiet
// bins of a sweep move by up to 7.8e-4 in log-mel); the FFT, magnitude, mel sum and log are
// double. Measured against HF: within 4.8e-7 (tests/golden/audio_frontend_golden_test.cpp).
#pragma once

#include <cstdint>
#include <vector>

namespace fc::audio {

struct LogMelConfig {  // Gemma4AudioFeatureExtractor's defaults
  int sample_rate = 16000;
  int n_mels = 128;
  int frame_length = 320;  // 20 ms
  int hop_length = 160;    // 10 ms
  int fft_length = 512;    // next power of two >= frame_length
  double min_frequency = 0.0, max_frequency = 8000.0;
  double mel_floor = 1e-3;
  int64_t max_samples = 480000;  // 30 s: longer input is truncated (HF truncation=True)
  int pad_to_multiple_of = 128;
};

struct LogMel {
  int64_t frames = 0;  // T, rows of `data` (padded frames included, as HF returns them)
  int64_t valid = 0;   // V <= T: rows [0, V) are real audio, the rest are zero
  int n_mels = 0;
  std::vector<float> data;  // [T, n_mels]
};

// Features of one mono clip at cfg.sample_rate (samples in [-1, 1] as decoders produce them).
LogMel log_mel(const float* samples, int64_t n, const LogMelConfig& cfg = {});

// HF's mel_filter_bank(fft_length/2 + 1 bins, n_mels, norm=None, mel_scale="htk"), double,
// [fft_length/2 + 1, n_mels] row-major.
std::vector<double> mel_filter_bank(const LogMelConfig& cfg = {});
// numpy.hanning(n + 1)[:-1] as float32 (HF's window_function(n), periodic).
std::vector<float> periodic_hann(int n);

// Valid mel frames of n samples: (n + frame/2 − frame − 1) // hop + 1, or 0 (n after truncation).
int64_t valid_mel_frames(int64_t n, const LogMelConfig& cfg = {});
// Rows after the tower's two stride-2 (k3, p1) subsampling convolutions: t ← (t − 1) // 2 + 1.
int64_t subsampled_frames(int64_t frames);
// Audio soft tokens of a clip of n samples (Gemma4Processor._compute_audio_num_tokens: the valid
// frames, subsampled twice, capped at audio_seq_length 750). 0 for clips under 161 samples.
int64_t audio_soft_tokens(int64_t n, const LogMelConfig& cfg = {}, int64_t max_tokens = 750);

}  // namespace fc::audio
