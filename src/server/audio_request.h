// Audio content parts of the OpenAI endpoints (issue 16; docs/design.md "Audio input, serving"):
// vLLM's chat parts {"type": "input_audio", "input_audio": {"data": BASE64, "format": "wav"}}
// and {"type": "audio_url", "audio_url": {"url": U}} (data:, http(s) through media_prefetch,
// file:// under --allowed-local-media-path: the image rules), decoded by src/audio (libsndfile,
// libsoxr to mono 16 kHz), truncated at 30 s as HF's feature extractor does, turned into the
// log-mel MediaInput the audio encoder takes (model/gemma4/audio_encoder.h).
//
// Bounds: encoded bytes (the request body limit for base64 data, 64 MiB for fetched media and in
// the decoder) and decoded duration (300 s before truncation: 10 minutes of audio is a 400, as is
// a clip with no samples or under 161 samples, which makes no soft token).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/gemma4/media.h"
#include "server/api_error.h"
#include "server/media_request.h"

namespace fc {

// The "audio" MediaLoader (registered by MediaContext when the config has an audio_config).
LoadedMedia load_audio(const MediaContext& ctx, const nlohmann::json& part,
                       const MediaRequestKwargs& kw);

// Encoded bytes → 16 kHz mono samples; ApiError 400 naming `what` for any bad input.
// `format` is the client's declared container ("" when none).
std::vector<float> decode_audio_bytes(const std::vector<uint8_t>& bytes, const std::string& what,
                                      const std::string& format = "");

// One clip of 16 kHz samples → the encoder input (log-mel rows of the first 30 s, num_tokens the
// processor's count). ApiError 400 when the clip makes no soft token.
std::shared_ptr<gemma4::MediaInput> audio_media_input(const std::vector<float>& samples,
                                                      const std::string& what);

// vLLM's error for audio on a checkpoint without audio_config (Gemma4ProcessingInfo
// .validate_num_items, vllm/model_executor/models/gemma4_mm.py).
ApiError no_audio_tower(const std::string& model);

}  // namespace fc
