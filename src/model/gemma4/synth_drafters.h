// Synthetic drafters for speculative-decoding benchmarks, made for a given target checkpoint
// (`fourcast synth --copy-of / --eagle3-for / --assistant-for`):
//  - a draft_model that is an exact or noisy copy of the target (spec weight-formats §6.3);
//  - a random EAGLE-3 head in the speculators layout (spec weight-formats §6.4, §7);
//  - a random gemma4_assistant (MTP) head (spec gemma4-architecture §9, weight-formats §6.6).
// Every writer streams its tensors through io::write_checkpoint: the target is read through its
// mmap'ed Checkpoint, never loaded whole, and random tensors use the counter-based generator of
// synth.h. Random heads propose ids the target rarely picks: they exercise the drafting path and
// its cost, not acceptance (the noisy copy is the knob for acceptance).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "model/gemma4/config.h"

namespace fc::gemma4 {

struct CopyOptions {
  // 0: byte-identical tensors. > 0: every dense floating-point weight tensor (F32/BF16/F16, not
  // the quantization scales) becomes w + N(0, (noise * rms(w))^2) per element, rms over the whole
  // tensor; packed NVFP4 codes (U8 `.weight` / `.weight_packed`) have each 4-bit code replaced by
  // a uniformly random code with probability `noise` (FP8 block scales and global scales kept).
  // Random-weight targets are chaotic: acceptance falls steeply with noise (the 490M benchmark
  // target of /work/synth: 2e-4 -> ~0.65, 5e-4 -> ~0.47, 5e-3 -> ~0.2 greedy, k = 4). In BF16 a
  // noise below ~2e-3 (half an ulp relative) acts by moving a fraction of the elements by one ulp.
  double noise = 0.0;
  uint64_t seed = 1;  // noise stream (per tensor: seed and the tensor's name)
  uint64_t max_shard_bytes = uint64_t{4} << 30;
};

struct CopyReport {
  int64_t tensors = 0;    // tensors written
  int64_t perturbed = 0;  // dense tensors with Gaussian noise added
  int64_t repacked = 0;   // packed NVFP4 tensors with re-randomised codes
  uint64_t bytes = 0;     // tensor bytes written
};

// Writes OUT_DIR as a copy of the checkpoint in SRC_DIR: its tensors (streamed from the mmap'ed
// source, sharded by max_shard_bytes) and every other regular file of SRC_DIR (config.json,
// generation_config.json, tokenizer files, chat template, hf_quant_config.json, ...) except
// *.safetensors and the shard index. The config is not changed.
CopyReport write_copy(const std::string& src_dir, const std::string& out_dir,
                      const CopyOptions& opt);

struct Eagle3SynthOptions {
  uint64_t seed = 1;
  int draft_vocab_size = 32000;  // rows of lm_head; clamped to the target vocabulary
  // Target ids placed in the draft vocabulary first (e.g. the ids the target's tokenizer has),
  // then the remaining ids in ascending order, until draft_vocab_size; the result is sorted, as
  // speculators' d2t requires.
  std::vector<int32_t> preferred_ids;
  std::string verifier;  // speculators_config.verifier.name_or_path (the target directory)
};

// The EAGLE-3 config.json (speculators layout, llama decoder, one layer) for a target: hidden =
// target hidden; heads, KV heads, head_dim and intermediate size mirror the target's sliding
// layers (as speculators builds its default layer config from the verifier); aux layer ids the
// default (2, L/2, L-3), clamped to [0, L); norm_before_residual true.
nlohmann::json eagle3_config_for(const Config& target, const Eagle3SynthOptions& opt);

// Writes a random BF16 EAGLE-3 head for the target in TARGET_DIR: fc, layers.0.*, norm, lm_head
// [draft_vocab, H], d2t (I64) and t2d (BOOL); no embed_tokens (the drafter shares the target's
// table). Returns the parameter count.
int64_t write_eagle3_for(const std::string& target_dir, const std::string& out_dir,
                         const Eagle3SynthOptions& opt);

struct AssistantSynthOptions {
  uint64_t seed = 1;
  // Ordered (centroid) embeddings: -1 = 2048 centroids for a full-vocabulary (262144) target, else
  // none; 0 = none; > 0 = that many (must divide the vocabulary).
  int num_centroids = -1;
  int centroid_top_k = 32;
};

// The gemma4_assistant config.json for a target. Geometry (spec gemma4-architecture §9.1):
// hidden 1024 for targets of hidden >= 2816 (31B, 26B-A4B), 256 for hidden >= 1024 (E4B, E2B and
// the small benchmark targets), else hidden / 4 (tiny test targets); 4 layers sliding, sliding,
// sliding, full; intermediate 8 x hidden (31B: 8192, E4B: 2048 as published); attention heads =
// the target's when the assistant hidden is 1024 (31B: 32 as published), else 4 (E2B/E4B);
// head_dim, KV heads per layer type, sliding window, RoPE and softcap copied from the target
// layers whose K/V the assistant reads (the pairing MtpDrafter checks).
nlohmann::json assistant_config_for(const Config& target, const AssistantSynthOptions& opt);

// Writes a random BF16 assistant for the target in TARGET_DIR (tensors of spec gemma4-architecture
// §9.5; token_ordering a seeded permutation). Returns the parameter count.
int64_t write_assistant_for(const std::string& target_dir, const std::string& out_dir,
                            const AssistantSynthOptions& opt);

}  // namespace fc::gemma4
