// The audio tower as the engine's MediaEncoder for modality "audio" (docs/design.md "Multimodal
// input": the contract). A MediaInput of an audio clip carries the log-mel rows of the clip
// (features [V, n_mels] with shape {V, n_mels}, the valid frames only: audio/log_mel.h) and
// num_tokens = audio_soft_tokens(samples); encode() runs AudioTower::encode on each clip and
// returns its embed_audio rows (HF Gemma4Model.get_audio_features after the padded-frame strip).
//
// The tower is held behind a pointer so that this header can sit next to vision.h (both towers
// define their own linear structs).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "model/gemma4/config.h"
#include "model/gemma4/media.h"
#include "model/gemma4/weights.h"

namespace fc::gemma4 {

class AudioTower;

class AudioEncoder final : public MediaEncoder {
 public:
  // Reads audio_config from <model_dir>/config.json and binds model.audio_tower.* /
  // model.embed_audio.* (throws fc::Error naming the key or tensor).
  AudioEncoder(const std::string& model_dir, const Config& text,
               std::shared_ptr<const Checkpoint> ckpt, Backend& backend,
               const LoadOptions& load = {});
  ~AudioEncoder() override;
  std::vector<std::string> modalities() const override { return {"audio"}; }
  int64_t embed_dim() const override { return text_hidden_; }
  // Throws fc::Error when an item's features are not [V, n_mels] or its num_tokens is not what
  // the tower produces for V frames.
  void encode(const std::vector<const MediaInput*>& items, float* out) override;
  int n_mels() const;

 private:
  int64_t text_hidden_ = 0;
  std::unique_ptr<AudioTower> tower_;
};

// True when config.json has an audio_config and the checkpoint holds model.audio_tower.*.
bool has_audio_tower(const Config& c, const Checkpoint& ckpt);

}  // namespace fc::gemma4
