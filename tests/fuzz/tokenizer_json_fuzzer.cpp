// Fuzzes tokenizer.json loading (src/tokenizer): model, normalizer, pre-tokenizer, decoder,
// post-processor and added tokens from arbitrary JSON. A file that loads must then encode (or
// refuse by name, fc::Error, where tokenizers also fails late: an unsupported post-processor
// with add_special_tokens, a missing unk_token) and decode without failing: a fixed text through
// encode/decode, every id below id_bound (plus a few out of range) through decode and the
// streaming decoder.
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<fc::tok::Tokenizer> tok;
  try {
    tok.emplace(fc::tok::Tokenizer::from_json_text(
        std::string_view(reinterpret_cast<const char*>(data), size), "tokenizer.json"));
  } catch (const fc::Error&) {
    return 0;
  }
  const std::string text = "Hello <|turn>user\n wörld  12345 \xF0\x9F\x98\x80 <bos>\t\r\n";
  for (bool special : {true, false}) {
    fc::tok::EncodeOptions eo;
    eo.parse_special = special;
    eo.add_special_tokens = !special;
    std::vector<int32_t> ids;
    try {
      ids = tok->encode(text, eo);
    } catch (const fc::Error&) {
      // Refused by name, as documented (tokenizer_test): an unsupported post-processor fails
      // only with add_special_tokens, a missing unk_token only when a piece needs it.
      continue;
    }
    for (int32_t id : ids)
      FUZZ_CHECK(id >= 0 && id < tok->id_bound(), "encode gave an id out of range");
    (void)tok->decode(ids, special);
  }
  std::vector<int32_t> all;
  const int32_t bound = std::min<int32_t>(tok->id_bound(), 4096);
  for (int32_t id = -2; id < bound + 2; ++id) all.push_back(id);
  (void)tok->decode(all, false);
  (void)tok->decode(all, true);
  try {
    fc::tok::StreamDecoder sd(*tok);
    for (int32_t id : all) (void)sd.push(id);
    (void)sd.finish();
  } catch (const fc::Error&) {  // a decoder that cannot be streamed is refused by name
  }
  for (int32_t id = 0; id < bound; ++id) {
    (void)tok->id_to_token(id);
    (void)tok->is_special(id);
  }
  (void)tok->gemma4_ids().differences_from_spec();
  return 0;
}
