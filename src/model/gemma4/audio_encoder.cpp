#include "model/gemma4/audio_encoder.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/gemma4/audio_config.h"
#include "model/gemma4/audio_tower.h"

namespace fc::gemma4 {

namespace {

AudioConfig read_audio_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::ifstream f(path);
  FC_CHECK(f.good(), "cannot read ", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    fail(path, ": ", e.what());
  }
  std::optional<AudioConfig> a = parse_audio_config(j, path);
  FC_CHECK(a.has_value(), path, " has no audio_config");
  return *a;
}

}  // namespace

AudioEncoder::AudioEncoder(const std::string& model_dir, const Config& text,
                           std::shared_ptr<const Checkpoint> ckpt, Backend& backend,
                           const LoadOptions& load)
    : text_hidden_(text.hidden_size),
      tower_(std::make_unique<AudioTower>(read_audio_config(model_dir), text.hidden_size,
                                          std::move(ckpt), backend, text.quant, load)) {}

AudioEncoder::~AudioEncoder() = default;

int AudioEncoder::n_mels() const {
  return tower_->config().n_mels;
}

void AudioEncoder::encode(const std::vector<const MediaInput*>& items, float* out) {
  const int64_t mels = tower_->config().n_mels;
  for (const MediaInput* in : items) {
    FC_CHECK(in->modality == "audio", "audio encoder given a ", in->modality, " item");
    FC_CHECK(in->shape.size() == 2 && in->shape[1] == mels && in->shape[0] >= 1 &&
                 static_cast<int64_t>(in->features.size()) == in->shape[0] * mels,
             "audio item: features must be [frames >= 1, ", mels, "]");
    const AudioEncoding e = tower_->encode(in->features.data(), in->shape[0]);
    FC_CHECK(e.n == in->num_tokens, "audio item: the tower made ", e.n, " soft tokens for ",
             in->shape[0], " frames, the prompt has ", in->num_tokens);
    std::memcpy(out, e.embeds.data(), e.embeds.size() * sizeof(float));
    out += e.embeds.size();
  }
}

bool has_audio_tower(const Config& c, const Checkpoint& ckpt) {
  return c.mm.has_audio && ckpt.find(
                               "model.audio_tower.subsample_conv_projection."
                               "layer0.conv.weight") != nullptr;
}

}  // namespace fc::gemma4
