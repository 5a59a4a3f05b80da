// Gemma 4 audio-tower hyper-parameters (Gemma4AudioConfig, `audio_config` of a
// Gemma4ForConditionalGeneration config.json) and the audio token ids of the wrapper config.
// Spec: ../shared/spec/multimodal.md §5.3, §3.1. E2B and E4B carry one; 26B-A4B and 31B do not.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <vector>

namespace fc::gemma4 {

struct AudioConfig {
  int hidden_size = 1024;
  int num_hidden_layers = 12;
  int num_attention_heads = 8;
  std::vector<int> subsampling_conv_channels = {128, 32};
  int conv_kernel_size = 5;
  double residual_weight = 0.5;
  int attention_chunk_size = 12;
  int attention_context_left = 13;
  int attention_context_right = 0;
  double attention_logit_cap = 50.0;
  bool use_clipped_linears = true;
  double rms_norm_eps = 1e-6;
  double gradient_clipping = 1e10;  // min'd with the fp32 maximum, as HF does
  int output_proj_dims = 1536;
  int n_mels = 128;  // the feature extractor's (not in the config; fixed by Gemma 4)
  // Wrapper config: <|audio|>, <|audio>, <audio|> (eoa_token_index, or vLLM's eoa_token_id).
  int audio_token_id = 258881, boa_token_id = 256000, eoa_token_id = 258883;

  int head_dim() const { return hidden_size / num_attention_heads; }
  // Keys a query sees: distances 0 .. window − 1 (HF's sliding mask (context_left − 1, 0)).
  int attention_window() const { return attention_context_left - 1; }
};

// The audio_config of a config.json document, or nullopt when it has none (a text-only or
// 26B/31B checkpoint). Throws fc::Error naming the key for bad or unsupported values.
std::optional<AudioConfig> parse_audio_config(const nlohmann::json& root,
                                              const std::string& source);

}  // namespace fc::gemma4
