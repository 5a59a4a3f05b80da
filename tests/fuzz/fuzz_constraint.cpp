// libFuzzer target for the constraint compiler: the first byte picks the kind (JSON Schema,
// regex, GBNF, Lark, choice), the rest is the constraint text. Compilation must either succeed
// or throw fc::Error; a compiled grammar is walked for a few bytes and its mask filled on a
// small byte vocabulary. Build (clang):
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address -Isrc tests/fuzz/fuzz_constraint.cpp \
//     src/grammar/*.cpp src/core/json_limits.cpp -o fuzz_constraint && ./fuzz_constraint
//     tests/fuzz/corpus/constraint
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "grammar/compiler.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fc::grammar;
  if (size < 1 || size > 4096) return 0;
  static std::shared_ptr<ConstraintCompiler> cc = [] {
    std::vector<std::string> bytes(260);
    std::vector<uint8_t> special(260, 0);
    bytes[0] = "<eos>";
    special[0] = 1;
    for (int b = 0; b < 256; ++b)
      bytes[static_cast<size_t>(b + 1)] = std::string(1, static_cast<char>(b));
    bytes[257] = "\":", bytes[258] = "ab", bytes[259] = "{\"";
    auto v = std::make_shared<const Vocab>(bytes, special, 260);
    auto c = std::make_shared<ConstraintCompiler>(
        v, [](const std::string&) { return -1; }, GemmaToolIds{});
    c->limits.max_dfa_states = 20000;
    c->limits.max_nfa_states = 200000;
    c->limits.max_repeat = 200;
    return c;
  }();
  static const ConstraintSpec::Kind kinds[] = {
      ConstraintSpec::Kind::kJsonSchema, ConstraintSpec::Kind::kRegex,
      ConstraintSpec::Kind::kGrammar, ConstraintSpec::Kind::kChoice};
  ConstraintSpec spec;
  spec.kind = kinds[data[0] % 4];
  spec.text.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  spec.json.strict = data[0] & 4;
  try {
    auto c = cc->compile(spec);
    TokenMatcher m(c, {0});
    MaskScratch scratch;
    std::vector<uint32_t> row(m.words());
    for (int step = 0; step < 8; ++step) {
      m.fill_mask(row.data(), scratch);
      int32_t pick = -1;
      for (int32_t t = 1; t < 260 && pick < 0; ++t)
        if ((row[static_cast<size_t>(t) >> 5] >> (t & 31)) & 1) pick = t;
      if (pick < 0 || !m.accept(pick)) break;
    }
  } catch (const fc::Error&) {
  }
  return 0;
}
