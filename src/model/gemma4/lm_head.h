// The LM head in a format chosen at load time (`--lm-head-dtype`): the tied BF16 head of a
// Gemma 4 checkpoint is the largest matrix one decode step reads (E2B: 0.81 of 1.86 GB per token
// with NVFP4 layers), so re-quantizing it to NVFP4 at load time cuts what decode streams. Opt-in:
// it changes the logits (its KL against the exact head is in docs/benchmarks.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/safetensors.h"

namespace fc::gemma4 {

enum class LmHeadDType {
  kCheckpoint,  // as stored ("checkpoint", or "auto")
  kBf16,        // BF16 (an F32/F16 head rounded to nearest even; a BF16 head as it is)
  kNvfp4,       // NVFP4, ModelOpt max arithmetic (one per-tensor amax, E4M3 block scales)
};

// "checkpoint"/"auto", "bf16", "nvfp4"; anything else throws naming the flag and the choices.
LmHeadDType parse_lm_head_dtype(const std::string& s);
const char* lm_head_dtype_name(LmHeadDType d);

// The head in dtype d: make_lm_head(kCheckpoint, ...) is `head` itself; otherwise bf16_lm_head or
// nvfp4_lm_head. A head already in the asked format is returned as it is.
Weight make_lm_head(LmHeadDType d, const Weight& head, const Checkpoint& ckpt, Backend& backend,
                    std::vector<std::vector<uint8_t>>& owned);

// The head `head` (bound from checkpoint tensor head.name, [V, H], dense F32/F16) rounded to
// BF16 from the checkpoint's host bytes, kept in `owned`, uploaded to `backend`.
Weight bf16_lm_head(const Weight& head, const Checkpoint& ckpt, Backend& backend,
                    std::vector<std::vector<uint8_t>>& owned);

// The head `head` (bound from checkpoint tensor head.name, [V, H], dense F32/BF16/F16) quantized
// to NVFP4 from the checkpoint's host bytes, with the codes and scales kept in `owned` and the
// weight uploaded to `backend`. A head that is NVFP4 already is returned as it is.
Weight nvfp4_lm_head(const Weight& head, const Checkpoint& ckpt, Backend& backend,
                     std::vector<std::vector<uint8_t>>& owned);

}  // namespace fc::gemma4
