#include "quantizer/quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/half.h"
#include "core/log.h"
#include "model/gemma4/model.h"
#include "quantizer/awq.h"
#include "quantizer/calib.h"
#include "quantizer/writer.h"

namespace fc::quantizer {

namespace {

// Elements [e0, e0+n) of a dense tensor as fp32.
std::vector<float> read_f32(const TensorInfo& t, uint64_t e0, uint64_t n) {
  FC_CHECK(e0 + n <= t.numel, "quantize: reading past the end of ", t.name);
  std::vector<float> v(n);
  if (t.dtype == DType::kF32) {
    std::memcpy(v.data(), t.data + e0 * 4, n * 4);
  } else if (t.dtype == DType::kBF16 || t.dtype == DType::kF16) {
    for (uint64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, t.data + (e0 + i) * 2, 2);
      v[i] = t.dtype == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
    }
  } else {
    fail("quantize: tensor ", t.name, " has dtype ", dtype_name(t.dtype),
         "; the input checkpoint must be unquantized (BF16, F16 or F32)");
  }
  return v;
}

// One linear to quantize (an expert projection is its own job).
struct Job {
  std::string module;
  int64_t rows = 0, cols = 0;
  std::vector<float> w;         // [rows, cols] fp32, smoothing folded in
  std::vector<float> in_scale;  // [cols] the quantized weight sees x ⊙ in_scale; empty: x
  std::vector<uint16_t> pqs;    // ModelOpt pre_quant_scale (BF16), o_proj under AWQ
  const ActStats* st = nullptr;
  bool expert = false;
  float amax_in = 0.0f;
};

// How a smoothing vector s of a group is absorbed (x/s must come from somewhere).
enum class Fold { kNorm, kUpRows, kPqs };

struct Smooth {
  std::vector<int> jobs;  // share one input
  Fold fold = Fold::kPqs;
  std::string norm;  // kNorm: tensor name of the RMSNorm weight feeding the group
  int up = -1;       // kUpRows: the up_proj job whose rows produce the input channels
};

class Planner {
 public:
  Planner(const gemma4::Config& c, const Checkpoint& ck, const CalibStats& st,
          const std::vector<std::string>& exclude)
      : c_(c), ck_(ck), st_(st), exclude_(exclude) {}

  std::vector<Job> jobs;
  std::vector<std::vector<int>> fused;  // groups sharing one weight amax and one input amax
  std::vector<Smooth> smooth;
  std::set<std::string> drop;             // source tensors replaced by quantized ones
  std::vector<std::string> kept_modules;  // linears left dense (shape)
  int kept = 0;

  bool excluded(const std::string& module) const {
    for (const std::string& p : exclude_)
      if (quant::glob_match(module, p)) return true;
    return false;
  }

  // A 2-D linear `module` ([rows, cols] from the source tensor module.weight, or rows
  // [row0, row0+rows) of a 3-D expert tensor). Returns the job index or -1 when kept dense.
  int add(const std::string& module, const TensorInfo* t, int64_t row0, int64_t rows, int64_t cols,
          bool expert) {
    if (!t) return -1;
    if (excluded(module)) {
      ++kept;
      return -1;
    }
    if (cols % 16 != 0) {
      ++kept;
      kept_modules.push_back(module);
      return -1;
    }
    Job j;
    j.module = module;
    j.rows = rows;
    j.cols = cols;
    j.expert = expert;
    j.w = read_f32(*t, static_cast<uint64_t>(row0 * cols), static_cast<uint64_t>(rows * cols));
    if (auto it = st_.linear.find(module); it != st_.linear.end()) j.st = &it->second;
    drop.insert(t->name);
    jobs.push_back(std::move(j));
    return static_cast<int>(jobs.size()) - 1;
  }
  int add_linear(const std::string& module) {
    const TensorInfo* t = ck_.find(module + ".weight");
    if (!t) return -1;
    FC_CHECK(t->shape.size() == 2, "quantize: ", t->name, " is not a matrix");
    return add(module, t, 0, t->shape[0], t->shape[1], false);
  }
  void add_group(std::vector<int> g, Fold fold, const std::string& norm, int up) {
    std::vector<int> members;
    bool all = true;
    for (int j : g) (j >= 0 ? members.push_back(j) : void(all = false));
    if (members.empty()) return;
    fused.push_back(members);
    // Smoothing only when every consumer of the input is quantized (a fold changes them all).
    if (all && (fold != Fold::kUpRows || up >= 0)) smooth.push_back({members, fold, norm, up});
  }

  void plan() {
    const std::string pre = c_.tensor_prefix;
    for (int i = 0; i < c_.num_hidden_layers; ++i) {
      const gemma4::LayerSpec& s = c_.layers[static_cast<size_t>(i)];
      const std::string p = pre + "layers." + std::to_string(i) + ".";
      std::vector<int> qkv{add_linear(p + "self_attn.q_proj")};
      if (!s.kv_shared) {
        qkv.push_back(add_linear(p + "self_attn.k_proj"));
        if (s.has_v_proj) qkv.push_back(add_linear(p + "self_attn.v_proj"));
      }
      add_group(qkv, Fold::kNorm, p + "input_layernorm.weight", -1);
      add_group({add_linear(p + "self_attn.o_proj")}, Fold::kPqs, "", -1);
      const int gate = add_linear(p + "mlp.gate_proj"), up = add_linear(p + "mlp.up_proj");
      add_group({gate, up}, Fold::kNorm, p + "pre_feedforward_layernorm.weight", -1);
      add_group({add_linear(p + "mlp.down_proj")}, Fold::kUpRows, "", up);
      // Per-layer-input projections: max calibration only (no foldable predecessor handled).
      for (const char* m : {"per_layer_input_gate", "per_layer_projection"})
        if (int j = add_linear(p + m); j >= 0) fused.push_back({j});
      if (c_.enable_moe_block) add_experts(p);
    }
    if (int j = add_linear(pre + "per_layer_model_projection"); j >= 0) fused.push_back({j});
  }

 private:
  // HF 3-D experts.gate_up_proj [E, 2I, H] / down_proj [E, H, I] -> per-expert 2-D linears.
  void add_experts(const std::string& p) {
    const TensorInfo* gu = ck_.find(p + "experts.gate_up_proj");
    const TensorInfo* dn = ck_.find(p + "experts.down_proj");
    if (!gu || !dn) return;
    const int64_t E = c_.num_experts, I = c_.moe_intermediate_size, H = c_.hidden_size;
    const size_t before = jobs.size();
    int n_dense = 0;
    for (int64_t e = 0; e < E; ++e) {
      const std::string x = p + "experts." + std::to_string(e) + ".";
      const int g = add(x + "gate_proj", gu, e * 2 * I, I, H, true);
      const int u = add(x + "up_proj", gu, e * 2 * I + I, I, H, true);
      const int d = add(x + "down_proj", dn, e * H, H, I, true);
      n_dense += (g < 0) + (u < 0) + (d < 0);
      add_group({g, u}, Fold::kPqs, "", -1);
      if (d >= 0) fused.push_back({d});
      smooth.resize(smooth.size() - (g >= 0 && u >= 0 ? 1 : 0));  // experts: max only
    }
    // A 3-D tensor is either split completely or kept as it is.
    if (n_dense > 0 && jobs.size() > before)
      fail("quantize: ", p, "experts are partly excluded; exclude all experts of a layer or none");
  }

  const gemma4::Config& c_;
  const Checkpoint& ck_;
  const CalibStats& st_;
  std::vector<std::string> exclude_;
};

void scale_cols(std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<float>& s) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      w[static_cast<size_t>(r * cols + c)] *= s[static_cast<size_t>(c)];
}

// The group's input rows as its quantized weights see them: sample ⊙ in_scale.
std::vector<float> effective_sample(const Job& j) {
  std::vector<float> x(j.st->sample.begin(), j.st->sample.begin() + j.st->sample_rows * j.cols);
  if (!j.in_scale.empty()) scale_cols(x, j.st->sample_rows, j.cols, j.in_scale);
  return x;
}

}  // namespace

const char* algo_name(Algo a) {
  switch (a) {
    case Algo::kMax:
      return "max";
    case Algo::kAwqLite:
      return "awq-lite";
    case Algo::kAwqFull:
      return "awq-full";
  }
  return "?";
}

std::vector<std::string> default_excludes() {
  return {"lm_head",        "*router*",      "*vision_tower*",
          "*embed_vision*", "*audio_tower*", "*embed_audio*"};
}

QuantizeSummary quantize_model(const QuantizeOptions& opt,
                               const std::vector<std::vector<int32_t>>& calib, ThreadPool& pool) {
  const quant::Producer producer = opt.format == quant::Format::kModelOpt
                                       ? quant::Producer::kModelOpt
                                       : quant::Producer::kCompressedTensors;
  gemma4::Config cfg = gemma4::load_config(opt.model_dir);
  FC_CHECK(!cfg.quant.quantized(), opt.model_dir,
           " is already quantized; quantize needs a BF16/F16/F32 checkpoint");
  std::shared_ptr<const Checkpoint> ckpt = Checkpoint::open_dir(opt.model_dir);
  cpu::CpuBackend cpu(pool);

  // 1. Calibration.
  CalibStats stats;
  {
    RecordingBackend rec(cpu, stats, opt.sample_rows);
    gemma4::ModelOptions mo;
    const TensorInfo* emb = ckpt->find(cfg.tensor_prefix + "embed_tokens.weight");
    mo.bf16_embed_scale = emb && emb->dtype == DType::kBF16;  // as served
    gemma4::Model model(cfg, ckpt, rec, mo);
    CalibOptions co;
    co.sample_rows = opt.sample_rows;
    co.progress = opt.progress;
    calibrate(model, rec, calib, &rec, co);
  }

  // 2. Plan the linears and their groups.
  std::vector<std::string> exclude = default_excludes();
  exclude.insert(exclude.end(), opt.exclude.begin(), opt.exclude.end());
  Planner pl(cfg, *ckpt, stats, exclude);
  pl.plan();
  std::vector<Job>& jobs = pl.jobs;
  QuantizeSummary sum;
  WriteSpec spec;

  // 3. AWQ-lite: one smoothing vector per group sharing an input, searched jointly.
  const bool awq = opt.algo != Algo::kMax;
  if (awq) {
    int done = 0;
    for (const Smooth& g : pl.smooth) {
      ++done;
      const Job& j0 = jobs[static_cast<size_t>(g.jobs[0])];
      if (!j0.st || j0.st->sample_rows == 0) continue;
      if (g.fold == Fold::kPqs && opt.format == quant::Format::kCompressedTensors)
        continue;  // llm-compressor: o_proj is not smoothed (no foldable predecessor with GQA)
      std::vector<GroupMember> members;
      for (int j : g.jobs)
        members.push_back(
            {jobs[static_cast<size_t>(j)].w.data(), jobs[static_cast<size_t>(j)].rows});
      const int64_t K = j0.cols;
      AwqSearch r = awq_lite_search(cpu, members, j0.st->sample.data(), j0.st->sample_rows, K,
                                    j0.st->mean_abs(), producer, opt.awq_keep_identity);
      char line[256];
      std::snprintf(line, sizeof line, "awq %-48s alpha %4.1f  mse %.4g (max %.4g)",
                    j0.module.c_str(), r.alpha, r.loss, r.loss_identity);
      sum.notes.push_back(line);
      if (opt.progress)
        std::fprintf(stderr, "\rawq: %d/%zu groups   %s", done, pl.smooth.size(),
                     done == static_cast<int>(pl.smooth.size()) ? "\n" : "");
      if (r.alpha < 0.0f) continue;
      ++sum.smoothed;
      std::vector<float> s = r.s;  // effective smoothing after the fold's rounding
      if (g.fold == Fold::kNorm) {
        const TensorInfo& nt = ckpt->get(g.norm);
        std::vector<float> nw = read_f32(nt, 0, nt.numel);
        FC_CHECK(static_cast<int64_t>(nw.size()) == K, "quantize: ", g.norm, " has ", nw.size(),
                 " values, the group reads ", K);
        for (int64_t c = 0; c < K; ++c) {
          const size_t i = static_cast<size_t>(c);
          const float folded = nw[i] / s[i];  // Gemma 4 RMSNorm: y = x̂ · w, so w/s gives y/s
          const float stored = nt.dtype == DType::kBF16  ? round_bf16(folded)
                               : nt.dtype == DType::kF16 ? f16_to_f32(f32_to_f16(folded))
                                                         : folded;
          if (nw[i] != 0.0f && stored != 0.0f) s[i] = nw[i] / stored;  // exact compensation
          nw[i] = stored;
        }
        spec.replace[g.norm] = std::move(nw);
      } else if (g.fold == Fold::kUpRows) {
        Job& up = jobs[static_cast<size_t>(g.up)];  // up row c feeds input channel c
        for (int64_t c = 0; c < K; ++c)
          for (int64_t k = 0; k < up.cols; ++k)
            up.w[static_cast<size_t>(c * up.cols + k)] /= s[static_cast<size_t>(c)];
      } else {
        // ModelOpt pre_quant_scale = 1/s in BF16; the weight absorbs exactly 1/bf16(1/s).
        Job& j = jobs[static_cast<size_t>(g.jobs[0])];
        j.pqs.resize(static_cast<size_t>(K));
        for (int64_t c = 0; c < K; ++c) {
          const size_t i = static_cast<size_t>(c);
          j.pqs[i] = f32_to_bf16(1.0f / s[i]);
          s[i] = 1.0f / bf16_to_f32(j.pqs[i]);
        }
      }
      for (int jj : g.jobs) {
        Job& j = jobs[static_cast<size_t>(jj)];
        scale_cols(j.w, j.rows, j.cols, s);
        j.in_scale.resize(static_cast<size_t>(K));
        for (int64_t c = 0; c < K; ++c)
          j.in_scale[static_cast<size_t>(c)] = 1.0f / s[static_cast<size_t>(c)];
      }
    }
  }

  // 4. Per fused group: shared weight amax (clip-searched for awq-full), shared input amax.
  std::map<std::string, float> expert_in_max;  // "<layer prefix>|proj" -> max over experts
  for (Job& j : jobs) {
    if (!j.st) continue;
    if (j.in_scale.empty()) {
      j.amax_in = j.st->amax;
    } else {
      for (int64_t c = 0; c < j.cols; ++c)
        j.amax_in = std::max(
            j.amax_in, j.st->ch_amax[static_cast<size_t>(c)] * j.in_scale[static_cast<size_t>(c)]);
    }
    if (j.expert) {
      const size_t at = j.module.rfind("experts.");
      const std::string key =
          j.module.substr(0, at) + "|" + j.module.substr(j.module.rfind('.') + 1);
      expert_in_max[key] = std::max(expert_in_max[key], j.amax_in);
    }
  }
  for (Job& j : jobs) {
    if (j.st && j.amax_in > 0.0f) continue;
    // Never-routed experts take the max over the layer's other experts (ModelOpt), else 0.5.
    float a = 0.0f;
    if (j.expert) {
      const size_t at = j.module.rfind("experts.");
      a = expert_in_max[j.module.substr(0, at) + "|" + j.module.substr(j.module.rfind('.') + 1)];
    }
    j.amax_in = a > 0.0f ? a : 0.5f;
    if (!j.expert) log_line(LogLevel::kWarn, "quantize: " + j.module + " saw no calibration input");
  }
  int gi = 0;
  for (const std::vector<int>& g : pl.fused) {
    ++gi;
    float wmax = 0.0f, imax = 0.0f;
    for (int jj : g) {
      Job& j = jobs[static_cast<size_t>(jj)];
      wmax = std::max(wmax, quant::abs_max(j.w.data(), j.rows, j.cols, j.cols));
      imax = std::max(imax, j.amax_in);
    }
    if (wmax <= 0.0f) wmax = 1.0f;  // an all-zero weight: any scale gives zero codes
    const Job& j0 = jobs[static_cast<size_t>(g[0])];
    if (opt.algo == Algo::kAwqFull && !j0.expert && j0.st && j0.st->sample_rows > 0) {
      std::vector<GroupMember> members;
      for (int jj : g)
        members.push_back(
            {jobs[static_cast<size_t>(jj)].w.data(), jobs[static_cast<size_t>(jj)].rows});
      const std::vector<float> x = effective_sample(j0);
      const float clipped =
          clip_search(cpu, members, x.data(), j0.st->sample_rows, j0.cols, wmax, producer);
      if (clipped < wmax) {
        ++sum.clipped;
        char line[256];
        std::snprintf(line, sizeof line, "clip %-47s amax ratio %.2f", j0.module.c_str(),
                      clipped / wmax);
        sum.notes.push_back(line);
      }
      wmax = clipped;
      if (opt.progress)
        std::fprintf(stderr, "\rclip: %d/%zu groups%s", gi, pl.fused.size(),
                     gi == static_cast<int>(pl.fused.size()) ? "\n" : "");
    }
    for (int jj : g) {
      Job& j = jobs[static_cast<size_t>(jj)];
      QuantizedLinear q;
      q.module = j.module;
      q.t = quant::quantize(j.w.data(), j.rows, j.cols, j.cols, wmax, producer);
      q.input_scale = imax / 2688.0f;  // amax/(6·448)
      q.amax_w = wmax;
      q.amax_in = imax;
      q.pre_quant_scale = std::move(j.pqs);
      spec.linears.push_back(std::move(q));
      std::vector<float>().swap(j.w);
    }
  }
  sum.quantized = static_cast<int>(spec.linears.size());
  sum.kept_dense = pl.kept;

  // 5. FP8 KV-cache scales: amax/448 per layer owning K/V (spec §2.9, §5).
  if (opt.kv_fp8) {
    for (int layer = 0; layer < cfg.num_hidden_layers; ++layer) {
      // KV-shared layers attend over their source layer's K/V: same amax (ModelOpt writes them).
      const int src = cfg.layers[static_cast<size_t>(layer)].kv_source;
      if (!stats.k_amax.count(src)) continue;
      if (src != layer && opt.format != quant::Format::kModelOpt) continue;  // CT: owners only
      const float ka = stats.k_amax[src], va = stats.v_amax[src];
      spec.kv_scales[cfg.tensor_prefix + "layers." + std::to_string(layer) + "."] = {
          ka > 0.0f ? ka / 448.0f : 1.0f, va > 0.0f ? va / 448.0f : 1.0f};
    }
  }

  // 6. Write.
  spec.format = opt.format;
  spec.quant_algo = awq && opt.format == quant::Format::kModelOpt ? "NVFP4_AWQ" : "NVFP4";
  spec.drop = pl.drop;
  spec.exclude = exclude;
  spec.exclude.insert(spec.exclude.end(), pl.kept_modules.begin(), pl.kept_modules.end());
  spec.max_shard_bytes = opt.max_shard_bytes;
  write_quantized(opt.model_dir, *ckpt, spec, opt.out_dir);
  return sum;
}

}  // namespace fc::quantizer
