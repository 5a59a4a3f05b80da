// The encoder step's contract, the same for every modality (docs/design.md "Multimodal input"):
// a media item is a run of `num_tokens` soft-token placeholders in the prompt; its MediaInput is
// plain data prepared on the request side (decode, resample, features); a MediaEncoder turns a
// batch of inputs of its modality into num_tokens rows of the text model's hidden size each,
// which the text model puts in place of the placeholders' embeddings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fc::gemma4 {

struct MediaInput {
  std::string modality;  // "image", "video" (one frame), "audio"
  int num_tokens = 0;    // soft tokens = embedding rows the encoder produces for this item
  // Modality-specific payload:
  //  image / video frame: features = patches [grid_h · grid_w, 3 · patch²] in [0, 1] (row-major
  //    patches, inside a patch (py, px, c)); positions = [grid_h · grid_w, 2] (x = column,
  //    y = row); grid_h, grid_w in patches (media/gemma4_image.h PatchGrid).
  //  audio: features = [frames, shape[1]] (e.g. log-mel), `mask` per frame; see the audio encoder.
  std::vector<float> features;
  std::vector<int32_t> positions;
  std::vector<uint8_t> mask;
  std::vector<int64_t> shape;
  int grid_h = 0, grid_w = 0;

  // Bytes held (the encoder-input side of the memory a request pins).
  int64_t bytes() const {
    return static_cast<int64_t>(features.size() * 4 + positions.size() * 4 + mask.size());
  }
};

class MediaEncoder {
 public:
  virtual ~MediaEncoder() = default;
  // Modalities this encoder handles (e.g. {"image", "video"}).
  virtual std::vector<std::string> modalities() const = 0;
  // Width of each output row (the text model's hidden size).
  virtual int64_t embed_dim() const = 0;
  // Encodes the items (each of one of modalities()) into `out` (host memory): Σ num_tokens rows
  // of embed_dim floats, items in order. Throws fc::Error for malformed inputs.
  virtual void encode(const std::vector<const MediaInput*>& items, float* out) = 0;
};

}  // namespace fc::gemma4
