// Audio decoding for the multimodal front end: encoded bytes (WAV PCM 8/16/24/32-bit or float,
// FLAC, Ogg Vorbis, Ogg Opus, MP3) → mono fp32 samples at 16 kHz.
//  - decoding: libsndfile (one well-kept LGPL library for every container above, read from
//    memory through its virtual I/O); integer PCM is scaled to [-1, 1) by 1/2^(bits-1);
//  - down-mix: the mean of the channels (librosa.to_mono, what vLLM's loader does);
//  - resampling: libsoxr, SOXR_HQ (python-soxr's default, which librosa's soxr_hq and so vLLM use),
//    output length ceil(n · 16000 / rate) as librosa.resample fixes it.
// Every bad input is an fc::Error naming `what` (e.g. "input_audio 0") and the problem; nothing
// is decoded past the limits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fc::audio {

struct DecodeLimits {
  size_t max_bytes = size_t{64} << 20;  // encoded size
  double max_seconds = 300.0;           // decoded duration (before HF's 30 s truncation)
  int max_channels = 16;
  int max_sample_rate = 384000;
};

// Container / codec names as the OpenAI `input_audio.format` field and file extensions use them.
enum class Container { kWav, kFlac, kOgg, kMp3, kOther };
const char* container_name(Container c);  // "wav", "flac", "ogg", "mp3", "other"

struct DecodedAudio {
  std::vector<float> samples;  // mono (channel mean), [-1, 1] for integer PCM
  int sample_rate = 0;
  int channels = 0;  // of the source
  Container container = Container::kOther;
  std::string codec;  // e.g. "PCM_16", "FLOAT", "FLAC", "VORBIS", "OPUS", "MPEG_LAYER_III"
  double seconds() const {
    return sample_rate > 0 ? static_cast<double>(samples.size()) / sample_rate : 0.0;
  }
};

// Decodes one clip. `declared_format`, when not empty, is the client's format name (wav, mp3,
// flac, ogg, opus, oga, mpeg, x-wav, ...); it must name a supported container and match the one
// detected in the bytes.
DecodedAudio decode_audio(const void* data, size_t size, const std::string& what,
                          const DecodeLimits& limits = {}, const std::string& declared_format = "");

// Band-limited resampling of mono samples from `from_rate` to `to_rate` Hz (libsoxr HQ).
std::vector<float> resample(const std::vector<float>& x, int from_rate, int to_rate);

// decode_audio, then resample to `rate` (16 kHz for Gemma 4). Rejects a clip with no samples.
std::vector<float> load_audio(const void* data, size_t size, const std::string& what,
                              const DecodeLimits& limits = {},
                              const std::string& declared_format = "", int rate = 16000);

}  // namespace fc::audio
