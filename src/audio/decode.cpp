#include "audio/decode.h"

#include <sndfile.h>
#include <soxr.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace fc::audio {
namespace {

// libsndfile virtual I/O over a byte range.
struct Mem {
  const uint8_t* p;
  sf_count_t size, pos;
};
sf_count_t vio_len(void* u) {
  return static_cast<Mem*>(u)->size;
}
sf_count_t vio_seek(sf_count_t off, int whence, void* u) {
  Mem* m = static_cast<Mem*>(u);
  sf_count_t to = whence == SEEK_SET ? off : whence == SEEK_CUR ? m->pos + off : m->size + off;
  m->pos = std::clamp<sf_count_t>(to, 0, m->size);
  return m->pos;
}
sf_count_t vio_read(void* dst, sf_count_t n, void* u) {
  Mem* m = static_cast<Mem*>(u);
  const sf_count_t k = std::max<sf_count_t>(0, std::min(n, m->size - m->pos));
  std::memcpy(dst, m->p + m->pos, static_cast<size_t>(k));
  m->pos += k;
  return k;
}
sf_count_t vio_write(const void*, sf_count_t, void*) {
  return 0;
}
sf_count_t vio_tell(void* u) {
  return static_cast<Mem*>(u)->pos;
}

uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

// libsndfile reads a RIFF/WAVE file whose data chunk is cut short without complaint (it decodes
// what is there); a clip cut in transfer is an error here. Streaming writers put 0 or 0xFFFFFFFF
// in the size field; those are read to the end.
void check_wav_complete(const uint8_t* p, size_t n, const std::string& what) {
  if (n < 12 || std::memcmp(p, "RIFF", 4) != 0 || std::memcmp(p + 8, "WAVE", 4) != 0) return;
  size_t off = 12;
  while (off + 8 <= n) {
    const uint32_t len = le32(p + off + 4);
    if (std::memcmp(p + off, "data", 4) == 0) {
      const size_t have = n - (off + 8);
      if (len != 0 && len != 0xFFFFFFFFu && len > have)
        fail(what, ": truncated WAV: the data chunk declares ", len, " bytes but only ", have,
             " follow");
      return;
    }
    off += 8 + static_cast<size_t>(len) + (len & 1);  // chunks are padded to even sizes
  }
  fail(what, ": truncated WAV: the header ends before the data chunk (", n, " bytes)");
}

Container container_of(int format) {
  switch (format & SF_FORMAT_TYPEMASK) {
    case SF_FORMAT_WAV:
    case SF_FORMAT_WAVEX:
    case SF_FORMAT_RF64:
      return Container::kWav;
    case SF_FORMAT_FLAC:
      return Container::kFlac;
    case SF_FORMAT_OGG:
      return Container::kOgg;
    case SF_FORMAT_MPEG:
      return Container::kMp3;
    default:
      return Container::kOther;
  }
}

std::string codec_of(int format) {
  switch (format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_S8:
      return "PCM_S8";
    case SF_FORMAT_PCM_U8:
      return "PCM_U8";
    case SF_FORMAT_PCM_16:
      return "PCM_16";
    case SF_FORMAT_PCM_24:
      return "PCM_24";
    case SF_FORMAT_PCM_32:
      return "PCM_32";
    case SF_FORMAT_FLOAT:
      return "FLOAT";
    case SF_FORMAT_DOUBLE:
      return "DOUBLE";
    case SF_FORMAT_VORBIS:
      return "VORBIS";
    case SF_FORMAT_OPUS:
      return "OPUS";
    case SF_FORMAT_MPEG_LAYER_I:
      return "MPEG_LAYER_I";
    case SF_FORMAT_MPEG_LAYER_II:
      return "MPEG_LAYER_II";
    case SF_FORMAT_MPEG_LAYER_III:
      return "MPEG_LAYER_III";
    case SF_FORMAT_ULAW:
      return "ULAW";
    case SF_FORMAT_ALAW:
      return "ALAW";
    case SF_FORMAT_IMA_ADPCM:
      return "IMA_ADPCM";
    case SF_FORMAT_MS_ADPCM:
      return "MS_ADPCM";
    default:
      return "subtype " + std::to_string(format & SF_FORMAT_SUBMASK);
  }
}

// A client's format name (OpenAI input_audio.format, a MIME subtype or an extension).
Container declared_container(std::string f, const std::string& what) {
  for (char& ch : f) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (f.rfind("audio/", 0) == 0) f = f.substr(6);
  if (f == "wav" || f == "wave" || f == "x-wav" || f == "vnd.wave") return Container::kWav;
  if (f == "flac" || f == "x-flac") return Container::kFlac;
  if (f == "ogg" || f == "oga" || f == "opus" || f == "vorbis") return Container::kOgg;
  if (f == "mp3" || f == "mpeg" || f == "mpga" || f == "x-mp3") return Container::kMp3;
  fail(what, ": unsupported audio format '", f, "' (supported: wav, mp3, flac, ogg, opus)");
}

struct SndFile {
  SNDFILE* f = nullptr;
  ~SndFile() {
    if (f) sf_close(f);
  }
};

}  // namespace

const char* container_name(Container c) {
  switch (c) {
    case Container::kWav:
      return "wav";
    case Container::kFlac:
      return "flac";
    case Container::kOgg:
      return "ogg";
    case Container::kMp3:
      return "mp3";
    default:
      return "other";
  }
}

DecodedAudio decode_audio(const void* data, size_t size, const std::string& what,
                          const DecodeLimits& lim, const std::string& declared_format) {
  const Container want =
      declared_format.empty() ? Container::kOther : declared_container(declared_format, what);
  if (size == 0) fail(what, ": empty audio data");
  if (size > lim.max_bytes)
    fail(what, ": audio data is ", size, " bytes, over the limit of ", lim.max_bytes);
  const uint8_t* p = static_cast<const uint8_t*>(data);
  check_wav_complete(p, size, what);

  Mem mem{p, static_cast<sf_count_t>(size), 0};
  SF_VIRTUAL_IO vio{vio_len, vio_seek, vio_read, vio_write, vio_tell};
  SF_INFO info{};
  SndFile sf;
  sf.f = sf_open_virtual(&vio, SFM_READ, &info, &mem);
  if (!sf.f)
    fail(what, ": cannot decode the audio (", sf_strerror(nullptr),
         "); supported: WAV (PCM, float), FLAC, Ogg Vorbis/Opus, MP3");
  DecodedAudio out;
  out.container = container_of(info.format);
  out.codec = codec_of(info.format);
  out.channels = info.channels;
  out.sample_rate = info.samplerate;
  if (out.container == Container::kOther)
    fail(what, ": unsupported audio container (libsndfile major format 0x", std::hex,
         info.format & SF_FORMAT_TYPEMASK, std::dec,
         "); supported: WAV (PCM, float), FLAC, Ogg Vorbis/Opus, MP3");
  if (want != Container::kOther && want != out.container)
    fail(what, ": the format field says '", declared_format, "' but the data is ",
         container_name(out.container));
  if (info.channels < 1 || info.channels > lim.max_channels)
    fail(what, ": ", info.channels, " audio channels (1 to ", lim.max_channels, " supported)");
  if (info.samplerate < 1 || info.samplerate > lim.max_sample_rate)
    fail(what, ": sample rate ", info.samplerate, " Hz outside [1, ", lim.max_sample_rate, "]");
  const double max_frames_d = lim.max_seconds * info.samplerate;
  const sf_count_t max_frames = static_cast<sf_count_t>(max_frames_d);
  if (info.frames > max_frames)
    fail(what, ": audio is ", static_cast<double>(info.frames) / info.samplerate,
         " s long, over the limit of ", lim.max_seconds, " s");

  const int C = info.channels;
  constexpr sf_count_t kChunk = 4096;
  std::vector<float> buf(static_cast<size_t>(kChunk * C));
  if (info.frames > 0) out.samples.reserve(static_cast<size_t>(info.frames));
  for (;;) {
    const sf_count_t got = sf_readf_float(sf.f, buf.data(), kChunk);
    if (got <= 0) break;
    if (static_cast<sf_count_t>(out.samples.size()) + got > max_frames)
      fail(what, ": audio is longer than the limit of ", lim.max_seconds, " s");
    for (sf_count_t i = 0; i < got; ++i) {
      float s = 0;
      for (int ch = 0; ch < C; ++ch) {
        const float v = buf[static_cast<size_t>(i * C + ch)];
        if (!std::isfinite(v))
          fail(what, ": sample ", static_cast<int64_t>(out.samples.size()), " of channel ", ch,
               " is not finite");
        s += v;
      }
      out.samples.push_back(C == 1 ? s : s / static_cast<float>(C));
    }
  }
  if (const int e = sf_error(sf.f); e != SF_ERR_NO_ERROR)
    fail(what, ": the audio stream is corrupt (", sf_error_number(e), ")");
  return out;
}

std::vector<float> resample(const std::vector<float>& x, int from, int to) {
  FC_CHECK(from > 0 && to > 0, "resample: rates must be positive (", from, " -> ", to, ")");
  if (from == to || x.empty()) return x;
  // librosa.resample's length: ceil(n · to / from).
  const size_t want = static_cast<size_t>(
      (static_cast<unsigned long long>(x.size()) * static_cast<unsigned>(to) + from - 1) /
      static_cast<unsigned>(from));
  std::vector<float> y(want + 64);
  size_t done = 0;
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
  const soxr_error_t err = soxr_oneshot(from, to, 1, x.data(), x.size(), nullptr, y.data(),
                                        y.size(), &done, &io, &q, nullptr);
  if (err) fail("resample ", from, " -> ", to, " Hz: libsoxr: ", err);
  y.resize(done);
  y.resize(want, 0.0f);  // pad or trim to librosa's length
  return y;
}

std::vector<float> load_audio(const void* data, size_t size, const std::string& what,
                              const DecodeLimits& limits, const std::string& declared_format,
                              int rate) {
  DecodedAudio a = decode_audio(data, size, what, limits, declared_format);
  if (a.samples.empty()) fail(what, ": the audio holds no samples");
  return resample(a.samples, a.sample_rate, rate);
}

}  // namespace fc::audio
