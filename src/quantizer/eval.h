// Quality of a quantized checkpoint: mean KL(p_base ‖ p_quant) per token of the next-token
// distributions (full vocabulary, fp32 logits after softcap, sums in double) over held-out
// sequences, plus top-1 agreement.
//
// Two ways to run the quantized model:
//  * overlay (default): the BASE model runs with a backend decorator that swaps in, by tensor
//    name, the quantized checkpoint's linears dequantized to fp32 (and its pre_quant_scale, and
//    every rewritten norm weight). This reads exactly the written files and needs no NVFP4
//    support in the loader or the CPU kernels.
//  * loader: the quantized directory loaded by fourcast's own loader (gemma4::Model on it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"

namespace fc::quantizer {

struct KlOptions {
  bool use_loader = false;  // run the quantized dir through gemma4::Model instead of the overlay
  bool w4a4 = false;        // overlay: also quantize-dequantize activations (input_scale, §2.3)
  bool progress = true;
};

struct KlResult {
  double mean_kl = 0.0;  // nats per token
  double max_kl = 0.0;
  double top1_agree = 0.0;  // fraction of tokens whose argmax agrees
  int64_t tokens = 0;
};

KlResult kl_divergence(const std::string& base_dir, const std::string& quant_dir,
                       const std::vector<std::vector<int32_t>>& seqs, ThreadPool& pool,
                       const KlOptions& opt);

// The same figures for two [tokens, V] arrays of logits (row t of each: the next-token logits of
// one position): KL(softmax p_t ‖ softmax q_t) in double, mean and max over rows, top-1
// agreement.
KlResult compare_logits(const float* p_logits, const float* q_logits, int64_t tokens, int64_t V);

}  // namespace fc::quantizer
