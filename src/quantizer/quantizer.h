// `fourcast quantize`: BF16 Gemma 4 checkpoint -> NVFP4 checkpoint in ModelOpt or
// compressed-tensors layout (spec weight-formats §2, §3, §5). Pipeline: calibrate (calib.h), pick
// smoothing / clipping (awq.h), quantize every linear with quant::quantize, write (writer.h).
//
// What is quantized: every linear of the text model (attention q/k/v/o, MLP gate/up/down, the
// per-layer-input projections, MoE experts split per expert) except the excluded ones: lm_head,
// routers, vision/audio towers, --exclude globs (fnmatch over HF module paths), and linears whose
// input width is not a multiple of 16. Embeddings and norms stay in their dtype.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "quant/quant_config.h"

namespace fc::quantizer {

enum class Algo { kMax, kAwqLite, kAwqFull };
const char* algo_name(Algo a);  // "max", "awq-lite", "awq-full"

struct QuantizeOptions {
  std::string model_dir;  // BF16 input checkpoint
  std::string out_dir;
  quant::Format format = quant::Format::kModelOpt;  // kModelOpt or kCompressedTensors
  Algo algo = Algo::kMax;
  std::vector<std::string> exclude;  // extra fnmatch globs over module paths
  bool kv_fp8 = false;               // calibrate and write FP8 KV-cache scales
  int64_t sample_rows = 512;         // calibration rows kept per linear for the searches
  // AWQ: also try s = 1 and keep it when no α of the grid lowers the group's output MSE
  // (ModelOpt / llm-compressor always take the best α; see docs/quantize.md).
  bool awq_keep_identity = true;
  uint64_t max_shard_bytes = uint64_t{5} << 30;
  bool progress = true;
};

struct QuantizeSummary {
  int quantized = 0;   // linear modules written as NVFP4 (experts count one per projection)
  int kept_dense = 0;  // linear modules left in their dtype
  int smoothed = 0;    // AWQ groups that got a non-trivial smoothing vector
  int clipped = 0;     // groups whose amax the clip search lowered
  std::vector<std::string> notes;  // one line per AWQ / clip decision, for --verbose output
};

// The default exclusions (ModelOpt / model-card practice for Gemma 4, spec §2.1).
std::vector<std::string> default_excludes();

// Runs the whole pipeline; `calib` are token sequences (each starting with BOS).
QuantizeSummary quantize_model(const QuantizeOptions& opt,
                               const std::vector<std::vector<int32_t>>& calib, ThreadPool& pool);

}  // namespace fc::quantizer
