// Fuzzes the readers of model-directory JSON files, after the bounded parse every file gets:
// config.json (gemma4::parse_config), quantization_config (quant::parse_quant_config),
// hf_quant_config.json (quant::parse_hf_quant_config), generation_config.json,
// --speculative-config (spec::parse_spec_config) and an EAGLE-3 drafter's config.json. The first
// byte picks the reader, the rest is the file. A bad file must give fc::Error naming it; a config
// that is accepted must describe a geometry the model code can use.
#include <string>

#include "core/error.h"
#include "core/json_limits.h"
#include "model/gemma4/config.h"
#include "quant/quant_config.h"
#include "sample/generation_config.h"
#include "spec/eagle3_config.h"
#include "spec/spec_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int which = data[0] % 6;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    if (which == 3) {
      (void)fc::parse_generation_config(text, "generation_config.json");
      return 0;
    }
    const nlohmann::json j = fc::parse_json(text, "config.json");
    switch (which) {
      case 0: {
        const fc::gemma4::Config c = fc::gemma4::parse_config(j, "config.json");
        FUZZ_CHECK(static_cast<int>(c.layers.size()) == c.num_hidden_layers, "layer count");
        for (const fc::gemma4::LayerSpec& s : c.layers) {
          FUZZ_CHECK(s.head_dim > 0 && s.head_dim % 2 == 0, "head_dim");
          FUZZ_CHECK(s.num_kv_heads > 0 && c.num_attention_heads % s.num_kv_heads == 0, "kv heads");
          FUZZ_CHECK(s.kv_source >= 0 && s.kv_source < c.num_hidden_layers, "kv_source");
          FUZZ_CHECK(s.intermediate > 0, "intermediate");
        }
        (void)fc::gemma4::describe(c);
        break;
      }
      case 1: {
        const fc::quant::QuantConfig q = fc::quant::parse_quant_config(j, "config.json");
        (void)q.scheme_for("model.language_model.layers.3.mlp.down_proj");
        (void)q.scheme_for("model.layers.0.self_attn.q_proj");
        break;
      }
      case 2: {
        const fc::quant::QuantConfig q =
            fc::quant::parse_hf_quant_config(j, "hf_quant_config.json");
        (void)q.scheme_for("model.layers.1.mlp.experts.0.up_proj");
        break;
      }
      case 4:
        (void)fc::spec::parse_spec_config(j);
        break;
      case 5:
        (void)fc::spec::parse_eagle3_config(j, "config.json");
        break;
    }
  } catch (const fc::Error&) {
  }
  return 0;
}
