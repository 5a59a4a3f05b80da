// The multimodal part of a Gemma4ForConditionalGeneration config.json: the placeholder and
// delimiter token ids (top level) and the vision tower (`vision_config`, spec multimodal.md §1.1).
// The audio tower's config is parsed by its own module; `has_audio` says whether one exists.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>

namespace fc::gemma4 {

struct VisionConfig {
  int hidden_size = 768;  // d
  int intermediate_size = 3072;
  int num_hidden_layers = 16;
  int num_attention_heads = 12;
  int num_key_value_heads = 12;
  int head_dim = 64;
  int patch_size = 16;
  int pooling_kernel_size = 3;
  int position_embedding_size = 10240;  // entries per axis of the position table
  double rope_theta = 100.0;
  double rms_norm_eps = 1e-6;
  bool use_clipped_linears = false;  // E2B/E4B
  bool standardize = false;          // 26B/31B
  int default_output_length = 280;   // vLLM's fallback soft-token budget (converter's extra key)
};

struct MultimodalConfig {
  bool conditional = false;  // a Gemma4ForConditionalGeneration config (text_config present)
  // Token ids (HF Gemma4Config defaults; read from the top level).
  int boi_token_id = 255999;    // <|image>  (also opens each video frame)
  int eoi_token_id = 258882;    // <image|>
  int image_token_id = 258880;  // <|image|>
  int video_token_id = 258884;  // <|video|>
  int audio_token_id = 258881;  // <|audio|>
  int boa_token_id = 256000;    // <|audio>
  int eoa_token_id = 258883;    // <audio|> (eoa_token_index in HF, eoa_token_id in vLLM)
  std::optional<VisionConfig> vision;
  bool has_audio = false;  // audio_config is set

  // A soft-token placeholder id: HF embeds these as the pad token (spec multimodal.md §1.3).
  bool is_placeholder(int id) const {
    return conditional && (id == image_token_id || id == video_token_id || id == audio_token_id);
  }
};

// Reads the multimodal keys of a config.json root (no-op for Gemma4ForCausalLM configs); throws
// fc::Error naming the key for mistyped or unsupported values.
MultimodalConfig parse_multimodal_config(const nlohmann::json& root, const std::string& source);

}  // namespace fc::gemma4
