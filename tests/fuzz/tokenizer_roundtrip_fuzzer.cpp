// Fuzzes encode/decode of the Gemma 4 tokenizer (the compact fixture of the real tokenizer.json,
// tests/fixtures/tokenizer/tokenizer.json). First byte: options; the rest is the text.
//  - valid UTF-8: decode(encode(text)) == text (byte fallback makes every text representable)
//    except that a literal U+2581 comes back as a space, as in HF tokenizers (the normalizer
//    writes spaces as U+2581 and the decoder's Replace turns every U+2581 into a space), and the
//    streaming decoder's deltas concatenate to the same text;
//  - invalid UTF-8: encode refuses it with fc::Error;
//  - the bytes read as little-endian int32 ids: decode and the streaming decoder never fail.
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"

namespace {

const fc::tok::Tokenizer& tok() {
  static const fc::tok::Tokenizer* t = new fc::tok::Tokenizer(fc::tok::Tokenizer::from_file(
      fc::fuzz::source_dir() + "/tests/fixtures/tokenizer/tokenizer.json"));
  return *t;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tok();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const fc::tok::Tokenizer& t = tok();
  const uint8_t flags = data[0];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  fc::tok::EncodeOptions eo;
  eo.parse_special = flags & 1;
  const bool skip_special = flags & 2;
  if (fc::fuzz::valid_utf8(text)) {
    const std::vector<int32_t> ids = t.encode(text, eo);
    const std::string back = t.decode(ids, false);
    std::string expected;  // U+2581 (3 bytes) comes back as a space (HF decoder Replace)
    for (size_t i = 0; i < text.size();) {
      if (text.compare(i, 3, "\u2581") == 0) {
        expected += ' ';
        i += 3;
      } else {
        expected += text[i++];
      }
    }
    FUZZ_CHECK(back == expected, "decode(encode(text)) != text: '" + back + "'");
    fc::tok::StreamDecoder sd(t, false);
    std::string streamed;
    for (int32_t id : ids) streamed += sd.push(id);
    streamed += sd.finish();
    FUZZ_CHECK(streamed == back, "streamed decode differs: '" + streamed + "'");
    if (skip_special) (void)t.decode(ids, true);
  } else {
    bool refused = false;
    try {
      (void)t.encode(text, eo);
    } catch (const fc::Error&) {
      refused = true;
    }
    FUZZ_CHECK(refused, "encode accepted invalid UTF-8");
  }
  std::vector<int32_t> ids(text.size() / 4);
  if (!ids.empty()) std::memcpy(ids.data(), text.data(), ids.size() * 4);
  for (int32_t& id : ids) id = id % (t.id_bound() + 8);  // mostly in range, some not
  (void)t.decode(ids, skip_special);
  fc::tok::StreamDecoder sd(t, skip_special);
  for (int32_t id : ids) (void)sd.push(id);
  (void)sd.finish();
  return 0;
}
