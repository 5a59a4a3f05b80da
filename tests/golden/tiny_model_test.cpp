// The bundled tiny model (models/tiny-gemma4, trained by tools/refgen/make_tiny_model.py on five
// canned behaviours with large logit margins) through the whole text path: chat template ->
// tokenizer -> engine session with an F32 or a BF16 KV cache -> greedy decoding -> detokenizer.
// The reference outputs are the training targets, which transformers reproduces exactly.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "backend/cpu/cpu_backend.h"
#include "chat/chat_template.h"
#include "engine/generate.h"
#include "tokenizer/tokenizer.h"

namespace fc {
namespace {

const std::string kModel = std::string(FC_SOURCE_DIR) + "/models/tiny-gemma4";

std::string read(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Case {
  const char* user;
  bool thinking;
  const char* want;  // generated text including the stop marker
};

class TinyModel : public ::testing::TestWithParam<DType> {};

TEST_P(TinyModel, GreedyReproducesTrainedAnswers) {
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  gemma4::ModelOptions mo;
  mo.bf16_embed_scale = true;  // BF16 checkpoint, as served
  gemma4::Model model(gemma4::load_config(kModel), Checkpoint::open_dir(kModel), be, mo);
  const tok::Tokenizer tk = tok::Tokenizer::from_file(kModel + "/tokenizer.json");
  const chat::Template tmpl = chat::Template::parse(read(kModel + "/chat_template.jinja"));
  SessionOptions so;
  so.kv_dtype = GetParam();
  Session session(model, be, so);
  const Case cases[] = {
      {"Hello", false, "Hello! I am the fourcast tiny model.<turn|>"},
      {"What is the capital of France?", false, "Paris.<turn|>"},
      {"Count to five", false, "1, 2, 3, 4, 5<turn|>"},
      {"What is 2+2?", true, "<|channel>thought\nTwo plus two is four.<channel|>4<turn|>"},
  };
  int id = 0;
  for (const Case& c : cases) {
    nlohmann::ordered_json ctx = {{"messages", {{{"role", "user"}, {"content", c.user}}}},
                                  {"add_generation_prompt", true},
                                  {"bos_token", "<bos>"},
                                  {"enable_thinking", c.thinking}};
    const std::vector<int32_t> prompt = tk.encode(tmpl.render(ctx));
    GenerateOptions go;
    go.sampling.temperature = 0;
    go.max_tokens = 40;
    go.stop_ids = {*tk.token_to_id("<turn|>"), *tk.token_to_id("<eos>")};
    const GenerateResult r = generate(session, id++, prompt, go);
    EXPECT_EQ(tk.decode(r.tokens), c.want) << c.user;
    EXPECT_EQ(r.finish_reason, "stop") << c.user;
  }
}

INSTANTIATE_TEST_SUITE_P(KvDtypes, TinyModel,
                         ::testing::Values(DType::kF32, DType::kBF16, DType::kF8_E4M3),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace fc
