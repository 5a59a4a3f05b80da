// Binds a checkpoint's tensors by name for the Gemma 4 text model and its drafters: dense weights
// with shape checks, and linear modules dense or NVFP4 as the checkpoint's quantization config
// says (ModelOpt or compressed-tensors names; spec weight-formats §2.2, §3.1), validating every
// scale (NaN / non-finite rejected naming the tensor, or zeroed into `owned` host copies with
// LoadOptions::zero_bad_scales). Every error names the tensor and its file.
#pragma once

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "core/half.h"
#include "core/log.h"
#include "io/safetensors.h"
#include "model/gemma4/weights.h"
#include "quant/quant_config.h"

namespace fc::gemma4 {

namespace binder_detail {
inline bool is_float_dtype(DType t) {
  return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16;
}

inline float read_float(const TensorInfo& t, size_t i = 0) {
  if (t.dtype == DType::kF32) {
    float v;
    std::memcpy(&v, t.data + i * 4, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, t.data + i * 2, 2);
  return t.dtype == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h);
}
}  // namespace binder_detail

class Binder {
 public:
  Binder(const quant::QuantConfig& quant, std::string prefix, const Checkpoint& ckpt, Backend& be,
         const LoadOptions& opt, std::vector<std::vector<uint8_t>>& owned, int64_t& nvfp4_count)
      : quant_(quant),
        prefix_(std::move(prefix)),
        ckpt_(ckpt),
        be_(be),
        opt_(opt),
        owned_(owned),
        nvfp4_count_(nvfp4_count) {}

  // Binds `name` (relative to the text prefix unless absolute) with the expected shape; a 3-D
  // [A, B, C] tensor is viewed as the matrix [A*B, C].
  Weight get(const std::string& rel, std::vector<int64_t> shape, bool absolute = false) {
    const std::string name = absolute ? rel : prefix_ + rel;
    const TensorInfo* t = ckpt_.find(name);
    if (!t) fail("missing tensor ", name, " in ", ckpt_.dir(), " (required by the config)");
    return bind(*t, std::move(shape));
  }
  // get() for a table read only by row gathers (Weight::gather_only).
  Weight get_rows(const std::string& rel, std::vector<int64_t> shape) {
    const TensorInfo* t = ckpt_.find(prefix_ + rel);
    if (!t)
      fail("missing tensor ", prefix_ + rel, " in ", ckpt_.dir(), " (required by the config)");
    return bind(*t, std::move(shape), true);
  }
  Weight opt(const std::string& rel, std::vector<int64_t> shape) {
    const TensorInfo* t = ckpt_.find(prefix_ + rel);
    return t ? bind(*t, std::move(shape)) : Weight{};
  }
  float scalar(const std::string& rel) {
    const Weight w = get(rel, {1});  // validates and marks it; w.data may be device memory
    const void* host = ckpt_.find(prefix_ + rel)->data;  // so read the mapping
    float v = 0;
    if (w.dtype == DType::kF32)
      std::memcpy(&v, host, 4);
    else if (w.dtype == DType::kBF16)
      v = bf16_to_f32(*static_cast<const uint16_t*>(host));
    else
      v = f16_to_f32(*static_cast<const uint16_t*>(host));
    return v;
  }

  // A linear module of logical shape [N, K] (`rel` relative to the text prefix unless absolute):
  // dense `.weight`, or NVFP4 as the quantization config says (spec weight-formats §2.2, §3.1).
  Weight linear(const std::string& rel, int64_t N, int64_t K, bool absolute = false) {
    const std::string module = absolute ? rel : prefix_ + rel;
    const quant::LinearScheme sc = quant_.scheme_for(module);
    if (sc.nvfp4) return nvfp4(module, N, K, sc);
    for (const char* q : {".weight_packed", ".weight_scale", ".weight_scale_2"})
      if (ckpt_.find(module + q))
        fail("tensor ", module, q, " in ", ckpt_.dir(), ": module ", module, " is quantized but ",
             quant_.quantized() ? quant_.source : "config.json",
             quant_.quantized() ? " excludes it" : " has no quantization description");
    return get(module + ".weight", {N, K}, true);
  }

  // FP8 KV-cache scales of an attention module (spec weight-formats §2.9, §3.2, §5).
  void kv_scales(const std::string& attn, LayerWeights& lw) {
    auto find = [&](std::initializer_list<const char*> names) -> const TensorInfo* {
      const TensorInfo* found = nullptr;
      for (const char* n : names)
        if (const TensorInfo* t = ckpt_.find(attn + n)) {
          mark(*t);
          if (!found) found = t;
        }
      return found;
    };
    const TensorInfo* k =
        find({".k_proj.k_scale", ".k_scale", ".attn.k_scale", ".k_proj.output_scale"});
    const TensorInfo* v =
        find({".v_proj.v_scale", ".v_scale", ".attn.v_scale", ".v_proj.output_scale"});
    if (const TensorInfo* kv = find({".kv_scale", ".attn.kv_scale"})) {
      if (!k) k = kv;
      if (!v) v = kv;
    }
    if (!k && !v) return;
    lw.has_kv_scales = true;
    lw.k_scale = k ? kv_scale_value(*k) : 1.0f;
    lw.v_scale = v ? kv_scale_value(*v) : 1.0f;
  }

  const std::set<std::string>& used() const { return used_; }
  int64_t params = 0;

 private:
  void mark(const TensorInfo& t) { used_.insert(t.name); }

  const TensorInfo& need(const std::string& name, const std::string& why) {
    const TensorInfo* t = ckpt_.find(name);
    if (!t) fail("missing tensor ", name, " in ", ckpt_.dir(), " (", why, ")");
    mark(*t);
    return *t;
  }

  // A per-tensor scale: 0-d or [1], F32 (BF16/F16 tolerated).
  float scalar_of(const TensorInfo& t) {
    if (!(t.shape.empty() || t.shape == std::vector<int64_t>{1}))
      fail("tensor ", t.name, " in ", t.file, " has shape ", shape_str(t.shape),
           ", expected a scalar ([] or [1])");
    if (!binder_detail::is_float_dtype(t.dtype))
      fail("tensor ", t.name, " in ", t.file, " has dtype ", dtype_name(t.dtype), ", expected F32");
    return binder_detail::read_float(t);
  }

  // A scale that must be finite and positive; bad values are rejected or replaced by `fallback`.
  float checked_scale(const TensorInfo& t, float v, float fallback, const char* effect) {
    if (std::isfinite(v) && v > 0.0f) return v;
    if (!opt_.zero_bad_scales)
      fail("tensor ", t.name, " in ", t.file, " holds the invalid scale ", v,
           " (must be finite and > 0); rerun with --zero-nan-scales to load it with ", effect);
    log_line(LogLevel::kWarn, str_cat("tensor ", t.name, " holds the invalid scale ", v, "; ",
                                      effect, " (--zero-nan-scales)"));
    return fallback;
  }

  float kv_scale_value(const TensorInfo& t) {
    return checked_scale(t, scalar_of(t), 1.0f, "a KV scale of 1.0");
  }

  Weight nvfp4(const std::string& m, int64_t N, int64_t K, const quant::LinearScheme& sc) {
    const bool ct = quant_.format == quant::Format::kCompressedTensors;
    const std::string why = "module " + m + " is NVFP4 per " + quant_.source;
    if (K % 16 != 0)
      fail("module ", m, ": in_features ", K, " is not a multiple of 16, the NVFP4 block size (",
           quant_.source, ")");
    const TensorInfo& packed = need(m + (ct ? ".weight_packed" : ".weight"), why);
    if (packed.dtype != DType::kU8)
      fail("tensor ", packed.name, " in ", packed.file, " has dtype ", dtype_name(packed.dtype),
           "; ", why, ", which stores U8 packed E2M1 codes");
    if (packed.shape != std::vector<int64_t>{N, K / 2})
      fail("tensor ", packed.name, " in ", packed.file, " has shape ", shape_str(packed.shape),
           ", expected ", shape_str({N, K / 2}), " (", N, " rows of ", K, " packed 4-bit values)");
    const TensorInfo& scale = need(m + ".weight_scale", why);
    if (scale.dtype != DType::kF8_E4M3)
      fail("tensor ", scale.name, " in ", scale.file, " has dtype ", dtype_name(scale.dtype),
           ", expected F8_E4M3 block scales");
    if (scale.shape != std::vector<int64_t>{N, K / 16})
      fail("tensor ", scale.name, " in ", scale.file, " has shape ", shape_str(scale.shape),
           ", expected ", shape_str({N, K / 16}), " (one scale per 16 inputs)");
    Weight w;
    w.format = WeightFormat::kNvfp4;
    w.dtype = DType::kU8;
    w.data = packed.data;
    w.name = packed.name;
    w.rows = N;
    w.cols = K;
    w.ld = K / 2;
    w.scale_ld = K / 16;
    w.block_scale = checked_block_scales(scale);
    if (ct) {
      const TensorInfo& g = need(m + ".weight_global_scale", why);
      // CT stores the reciprocal: W = e2m1 · s / weight_global_scale (spec §3.1).
      w.global_scale = 1.0f / checked_scale(g, scalar_of(g), INFINITY, "the weight zeroed");
      if (const TensorInfo* a = ckpt_.find(m + ".input_global_scale")) {
        mark(*a);
        w.input_scale = 1.0f / checked_scale(*a, scalar_of(*a), INFINITY, "no activation scale");
      } else if (sc.input_scale) {
        need(m + ".input_global_scale", why + " with quantized input activations");
      }
    } else {
      const TensorInfo& g = need(m + ".weight_scale_2", why);
      const float s2 = scalar_of(g);
      w.global_scale = s2 == 0.0f ? 0.0f : checked_scale(g, s2, 0.0f, "the weight zeroed");
      if (const TensorInfo* a = ckpt_.find(m + ".input_scale")) {
        mark(*a);
        w.input_scale = checked_scale(*a, scalar_of(*a), 0.0f, "no activation scale");
      } else if (sc.input_scale) {
        need(m + ".input_scale", why + " (quant_algo " + quant_.quant_algo + ")");
      }
      if (const TensorInfo* p = ckpt_.find(m + ".pre_quant_scale")) {
        mark(*p);
        if (!binder_detail::is_float_dtype(p->dtype) || p->shape != std::vector<int64_t>{K})
          fail("tensor ", p->name, " in ", p->file, " has ", dtype_name(p->dtype), " ",
               shape_str(p->shape), ", expected a float vector ", shape_str({K}));
        w.pre_quant_scale = checked_pqs(*p);
        w.pqs_dtype = p->dtype;
      }
    }
    params += N * K;
    ++nvfp4_count_;
    return be_.upload(w);
  }

  // FP8 block scales; NaN bytes (0x7F / 0xFF) rejected or zeroed into a host copy.
  const uint8_t* checked_block_scales(const TensorInfo& t) {
    int64_t bad = 0, first = -1;
    for (uint64_t i = 0; i < t.nbytes; ++i)
      if ((t.data[i] & 0x7F) == 0x7F && (bad++ == 0)) first = static_cast<int64_t>(i);
    if (bad == 0) return t.data;
    const int64_t cols = t.shape[1];
    if (!opt_.zero_bad_scales)
      fail("tensor ", t.name, " in ", t.file, " has ", bad, " NaN FP8 block scale(s), first at [",
           first / cols, ", ", first % cols,
           "]; rerun with --zero-nan-scales to load it with those blocks zeroed");
    log_line(LogLevel::kWarn, str_cat("tensor ", t.name, ": ", bad,
                                      " NaN FP8 block scale(s) zeroed (--zero-nan-scales)"));
    std::vector<uint8_t> copy(t.data, t.data + t.nbytes);
    for (uint8_t& b : copy)
      if ((b & 0x7F) == 0x7F) b = 0;
    owned_.push_back(std::move(copy));
    return owned_.back().data();
  }

  const void* checked_pqs(const TensorInfo& t) {
    int64_t bad = 0;
    for (uint64_t i = 0; i < t.numel; ++i)
      if (!std::isfinite(binder_detail::read_float(t, i))) ++bad;
    if (bad == 0) return t.data;
    if (!opt_.zero_bad_scales)
      fail(
          "tensor ", t.name, " in ", t.file, " has ", bad,
          " non-finite value(s); rerun with --zero-nan-scales to load it with those inputs zeroed");
    log_line(LogLevel::kWarn, str_cat("tensor ", t.name, ": ", bad,
                                      " non-finite value(s) zeroed (--zero-nan-scales)"));
    std::vector<uint8_t> copy(t.data, t.data + t.nbytes);
    const size_t es = static_cast<size_t>(dtype_bits(t.dtype) / 8);
    for (uint64_t i = 0; i < t.numel; ++i)
      if (!std::isfinite(binder_detail::read_float(t, i))) std::memset(copy.data() + i * es, 0, es);
    owned_.push_back(std::move(copy));
    return owned_.back().data();
  }

  Weight bind(const TensorInfo& t, std::vector<int64_t> shape, bool gather_only = false) {
    if (!binder_detail::is_float_dtype(t.dtype))
      fail("tensor ", t.name, " in ", t.file, " has dtype ", dtype_name(t.dtype),
           "; dense weights must be F32, BF16 or F16",
           t.dtype == DType::kU8 ? " (packed NVFP4 without a quantization config?)" : "");
    // [1] scalars may also be stored 0-d.
    const bool scalar_ok = shape == std::vector<int64_t>{1} && t.shape.empty();
    if (t.shape != shape && !scalar_ok)
      fail("tensor ", t.name, " in ", t.file, " has shape ", shape_str(t.shape), ", expected ",
           shape_str(shape));
    mark(t);
    params += static_cast<int64_t>(t.numel);
    Weight w;
    w.data = t.data;
    w.dtype = t.dtype;
    w.name = t.name;
    if (shape.size() <= 1) {
      w.rows = 1;
      w.cols = shape.empty() ? 1 : shape[0];
    } else {
      w.cols = shape.back();
      w.rows = 1;
      for (size_t i = 0; i + 1 < shape.size(); ++i) w.rows *= shape[i];
    }
    w.ld = w.cols;
    w.gather_only = gather_only;
    return be_.upload(w);
  }

  const quant::QuantConfig& quant_;
  std::string prefix_;
  const Checkpoint& ckpt_;
  Backend& be_;
  const LoadOptions& opt_;
  std::vector<std::vector<uint8_t>>& owned_;
  int64_t& nvfp4_count_;
  std::set<std::string> used_;
};

}  // namespace fc::gemma4
