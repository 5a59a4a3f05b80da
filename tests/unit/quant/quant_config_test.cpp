// Which linears are NVFP4 per ModelOpt / compressed-tensors configs (spec weight-formats §2.1,
// §3.2): exclude globs with vLLM's matching rules, MIXED_PRECISION, CT ignore regexes, and
// errors that name the file and field.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "quant/quant_config.h"

namespace fc::quant {
namespace {

using nlohmann::json;

std::string error_of(const json& qc) {
  try {
    parse_quant_config(qc, "x/config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(QuantConfig, GlobMatchesLikeFnmatch) {
  EXPECT_TRUE(glob_match("model.layers.3.self_attn.q_proj", "*self_attn*"));
  EXPECT_TRUE(glob_match("model.layers.3.router.proj", "model.*.router*"));
  EXPECT_TRUE(glob_match("lm_head", "lm_head"));
  EXPECT_FALSE(glob_match("lm_head2", "lm_head"));
  EXPECT_TRUE(glob_match("a.b7", "a.b[0-9]"));
  EXPECT_FALSE(glob_match("a.bx", "a.b[0-9]"));
  EXPECT_TRUE(glob_match("a.bx", "a.b[!0-9]"));
  EXPECT_TRUE(glob_match("abc", "a?c"));
  EXPECT_FALSE(glob_match("ac", "a?c"));
}

TEST(QuantConfig, ModelOptHfQuantConfigExcludes) {
  const json hf = {{"producer", {{"name", "modelopt"}}},
                   {"quantization",
                    {{"quant_algo", "NVFP4"},
                     {"group_size", 16},
                     {"kv_cache_quant_algo", "FP8"},
                     {"exclude_modules",
                      {"lm_head", "model.language_model.layers.*.self_attn*", "*router*",
                       "model.language_model.layers.2.mlp.gate_up_proj"}}}}};
  const QuantConfig q = parse_hf_quant_config(hf, "hf_quant_config.json");
  EXPECT_EQ(q.format, Format::kModelOpt);
  EXPECT_TRUE(q.kv_fp8);
  const std::string L = "model.language_model.layers.";
  EXPECT_FALSE(q.scheme_for(L + "0.self_attn.q_proj").nvfp4);  // glob
  EXPECT_FALSE(q.scheme_for(L + "0.router.proj").nvfp4);
  EXPECT_FALSE(q.scheme_for("lm_head").nvfp4);
  EXPECT_FALSE(q.scheme_for(L + "2.mlp.up_proj").nvfp4);  // fused-name expansion
  EXPECT_TRUE(q.scheme_for(L + "2.mlp.down_proj").nvfp4);
  EXPECT_FALSE(q.scheme_for("model.vision_tower.encoder.layers.0.mlp.fc1").nvfp4);
  const LinearScheme s = q.scheme_for(L + "0.mlp.gate_proj");
  EXPECT_TRUE(s.nvfp4);
  EXPECT_TRUE(s.input_scale);
  EXPECT_FALSE(s.pre_quant_scale);
}

TEST(QuantConfig, ModelOptConfigJsonDispatchesOnQuantMethod) {
  // ModelOpt's config.json looks like compressed-tensors (config_groups) but is modelopt.
  const json qc = {{"config_groups", {{"group_0", {{"weights", {{"num_bits", 4}}}}}}},
                   {"ignore", {"lm_head", "*.o_proj"}},
                   {"quant_algo", "NVFP4_AWQ"},
                   {"kv_cache_scheme", {{"num_bits", 8}, {"type", "float"}}},
                   {"quant_method", "modelopt"}};
  const QuantConfig q = parse_quant_config(qc, "config.json");
  EXPECT_EQ(q.format, Format::kModelOpt);
  EXPECT_TRUE(q.kv_fp8);
  EXPECT_FALSE(q.scheme_for("model.layers.0.self_attn.o_proj").nvfp4);
  const LinearScheme s = q.scheme_for("model.layers.0.mlp.down_proj");
  EXPECT_TRUE(s.nvfp4 && s.input_scale && s.pre_quant_scale);
}

TEST(QuantConfig, MixedPrecisionAndW4A16) {
  const json hf = {
      {"quantization",
       {{"quant_algo", "MIXED_PRECISION"},
        {"quantized_layers",
         {{"model.layers.0.mlp.down_proj", {{"quant_algo", "W4A16_NVFP4"}, {"group_size", 16}}},
          {"model.layers.0.mlp.gate_up_proj", {{"quant_algo", "NVFP4"}}}}}}}};
  const QuantConfig q = parse_hf_quant_config(hf, "hf_quant_config.json");
  const LinearScheme d = q.scheme_for("model.layers.0.mlp.down_proj");
  EXPECT_TRUE(d.nvfp4);
  EXPECT_FALSE(d.input_scale);
  EXPECT_TRUE(q.scheme_for("model.layers.0.mlp.up_proj").nvfp4);
  EXPECT_FALSE(q.scheme_for("model.layers.0.self_attn.q_proj").nvfp4);
  EXPECT_FALSE(q.scheme_for("model.layers.1.mlp.down_proj").nvfp4);
}

TEST(QuantConfig, CompressedTensorsIgnoreRegexes) {
  const json args = {{"num_bits", 4},
                     {"type", "float"},
                     {"strategy", "tensor_group"},
                     {"group_size", 16},
                     {"symmetric", true}};
  const json qc = {
      {"quant_method", "compressed-tensors"},
      {"format", "nvfp4-pack-quantized"},
      {"config_groups",
       {{"group_0", {{"targets", {"Linear"}}, {"weights", args}, {"input_activations", args}}}}},
      {"ignore", {"lm_head", "re:.*self_attn.*", "model.layers.3.mlp.down_proj"}},
      {"kv_cache_scheme", {{"num_bits", 8}, {"type", "float"}}}};
  const QuantConfig q = parse_quant_config(qc, "config.json");
  EXPECT_EQ(q.format, Format::kCompressedTensors);
  EXPECT_TRUE(q.kv_fp8);
  EXPECT_FALSE(q.scheme_for("lm_head").nvfp4);
  EXPECT_FALSE(q.scheme_for("model.layers.0.self_attn.q_proj").nvfp4);
  EXPECT_FALSE(q.scheme_for("model.layers.3.mlp.down_proj").nvfp4);
  EXPECT_TRUE(q.scheme_for("model.layers.13.mlp.down_proj").nvfp4);  // exact names only
  EXPECT_TRUE(q.scheme_for("model.layers.0.mlp.up_proj").input_scale);
  json a16 = qc;
  a16["config_groups"]["group_0"].erase("input_activations");
  EXPECT_FALSE(parse_quant_config(a16, "c").scheme_for("model.layers.0.mlp.up_proj").input_scale);
}

TEST(QuantConfig, ErrorsNameTheField) {
  EXPECT_NE(error_of({{"quant_method", "gptq"}}).find("quant_method \"gptq\""), std::string::npos);
  EXPECT_NE(error_of({{"quant_method", "modelopt"}, {"quant_algo", "FP8"}}).find("\"FP8\""),
            std::string::npos);
  EXPECT_NE(error_of({{"quant_method", "modelopt"}}).find("quant_algo is missing"),
            std::string::npos);
  const json int4 = {
      {"quant_method", "compressed-tensors"},
      {"format", "nvfp4-pack-quantized"},
      {"config_groups",
       {{"g", {{"weights", {{"num_bits", 4}, {"type", "int"}, {"group_size", 128}}}}}}}};
  EXPECT_NE(error_of(int4).find("config_groups.g.weights is not NVFP4"), std::string::npos);
  json bad_re = int4;
  bad_re["config_groups"]["g"]["weights"] = {
      {"num_bits", 4}, {"type", "float"}, {"group_size", 16}};
  bad_re["ignore"] = {"re:(unclosed"};
  EXPECT_NE(error_of(bad_re).find("re:(unclosed"), std::string::npos);
  EXPECT_NE(error_of({{"quant_method", "compressed-tensors"}, {"format", "int-quantized"}})
                .find("format is \"int-quantized\""),
            std::string::npos);
}

TEST(QuantConfig, WrongTypesAreErrorsNamingTheKey) {
  // Found by config_fuzzer: nlohmann's own type errors escaped (no file, no key) or, for a
  // group that is not an object, were not caught as fc::Error at all.
  const json group = {{"weights", {{"num_bits", 4}, {"type", "float"}, {"group_size", 16}}},
                      {"targets", {"Linear"}}};
  json qc = {{"quant_method", "compressed-tensors"},
             {"format", "nvfp4-pack-quantized"},
             {"config_groups", {{"group_0", group}}}};
  EXPECT_EQ(error_of(qc), "");
  json bad = qc;
  bad["config_groups"]["group_0"]["weights"]["num_bits"] = "4";
  EXPECT_NE(error_of(bad).find("x/config.json: quantization_config.config_groups.group_0.weights: "
                               "key 'num_bits' must be an integer, got \"4\""),
            std::string::npos)
      << error_of(bad);
  bad = qc;
  bad["config_groups"]["group_0"] = 7;
  EXPECT_NE(error_of(bad).find("config_groups.group_0 must be an object"), std::string::npos);
  bad = qc;
  bad["config_groups"]["group_0"]["weights"] = "fp4";
  EXPECT_NE(error_of(bad).find("key 'weights' must be an object"), std::string::npos);
  bad = qc;
  bad["quant_method"] = 3;
  EXPECT_NE(error_of(bad).find("key 'quant_method' must be a string"), std::string::npos);
  bad = qc;
  bad["kv_cache_scheme"] = {{"num_bits", 8.5}, {"type", "float"}};
  EXPECT_NE(error_of(bad).find("kv_cache_scheme: key 'num_bits' must be an integer"),
            std::string::npos);
}

}  // namespace
}  // namespace fc::quant
