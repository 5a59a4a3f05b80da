#include "server/audio_request.h"

#include "audio/decode.h"
#include "audio/log_mel.h"
#include "core/error.h"
#include "server/media_fetch.h"

namespace fc {

using nlohmann::json;

ApiError no_audio_tower(const std::string& model) {
  return ApiError::bad_request("Audio input was provided but the model '" + model +
                                   "' does not have an audio tower. Audio inference is only "
                                   "supported for Gemma4 models that include an audio_config "
                                   "(i.e., models that include an audio_config).",
                               "messages");
}

std::vector<float> decode_audio_bytes(const std::vector<uint8_t>& bytes, const std::string& what,
                                      const std::string& format) {
  try {
    return audio::load_audio(bytes.data(), bytes.size(), what, audio::DecodeLimits{}, format);
  } catch (const Error& e) {
    throw ApiError::bad_request(std::string("Failed to load the audio: ") + e.what(), "messages");
  }
}

std::shared_ptr<gemma4::MediaInput> audio_media_input(const std::vector<float>& samples,
                                                      const std::string& what) {
  const audio::LogMelConfig lc;
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(samples.size()), lc.max_samples);
  const int64_t tokens = audio::audio_soft_tokens(n, lc);
  if (tokens <= 0)
    throw ApiError::bad_request(what + " is too short: " + std::to_string(n) +
                                    " samples at 16 kHz make no audio token (at least 161 needed)",
                                "messages");
  const audio::LogMel mel = audio::log_mel(samples.data(), n, lc);
  auto in = std::make_shared<gemma4::MediaInput>();
  in->modality = "audio";
  in->num_tokens = static_cast<int>(tokens);
  // Only the valid frames: the tower never reads padded rows (audio_tower.h).
  in->features.assign(mel.data.begin(), mel.data.begin() + mel.valid * mel.n_mels);
  in->shape = {mel.valid, mel.n_mels};
  in->mask.assign(static_cast<size_t>(mel.valid), 1);
  return in;
}

LoadedMedia load_audio(const MediaContext& ctx, const json& part, const MediaRequestKwargs& kw) {
  std::vector<uint8_t> bytes;
  std::string format;
  auto ia = part.find("input_audio");
  if (part.value("type", "") == "input_audio" ||
      (ia != part.end() && !part.contains("audio_url"))) {
    if (ia == part.end() || !ia->is_object())
      throw ApiError::bad_request("input_audio must be an object with data and format", "messages");
    auto d = ia->find("data");
    if (d == ia->end() || !d->is_string())
      throw ApiError::bad_request("input_audio.data must be a base64 string", "messages");
    auto f = ia->find("format");
    if (f != ia->end() && !f->is_null()) {
      if (!f->is_string())
        throw ApiError::bad_request("input_audio.format must be a string", "messages");
      format = f->get<std::string>();
    }
    const std::string& s = d->get_ref<const std::string&>();
    if (s.rfind("data:", 0) == 0) {
      bytes = load_media_url(s, ctx.fetch(), kw.prefetched.get());
    } else if (!base64_decode(s, bytes)) {
      throw ApiError::bad_request("input_audio.data is not valid base64", "messages");
    }
  } else {
    bytes = load_media_url(media_part_url(part, "audio"), ctx.fetch(), kw.prefetched.get());
  }
  const std::vector<float> samples = decode_audio_bytes(bytes, "the audio", format);
  LoadedMedia m;
  m.modality = "audio";
  m.inputs.push_back(audio_media_input(samples, "the audio"));
  m.key = media_key(part, bytes, "audio/16000/30s");
  return m;
}

}  // namespace fc
