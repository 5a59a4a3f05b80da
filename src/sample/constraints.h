// Output constraints (TokenConstraint, sample/sampler.h). JSON mode (OpenAI response_format
// {"type": "json_object"}): generation is constrained so the output is one JSON object (RFC 8259
// syntax; duplicate keys and number ranges are not checked), then a stop token. And vLLM's
// choice constraint (below).
//
// JsonMachine reads bytes and says whether each may come next. JsonObjectConstraint masks, at
// every step, every token whose bytes the machine would refuse (a copy of the machine walks each
// token's bytes, except inside strings, where string_safe tokens pass unwalked), every special
// token, and the stop tokens until the object is complete; after it, only stop tokens.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sample/sampler.h"

namespace fc {

class JsonMachine {
 public:
  static constexpr int kMaxDepth = 32;    // nesting deeper than this is refused
  static constexpr int kMaxSpaceRun = 8;  // consecutive whitespace bytes allowed

  // Consumes c if it may come next (true); otherwise leaves the machine as it was (false).
  bool feed(uint8_t c);
  // A whole top-level object was read (only whitespace may follow).
  bool complete() const { return done_; }
  // Inside a string, not in an escape or a multi-byte character: any string_safe token fits.
  bool in_plain_string() const {
    return lex_ == Lex::kString && !str_escape_ && str_hex_ == 0 && utf8_left_ == 0;
  }

 private:
  enum class Ctx : uint8_t {
    kObjKeyOrEnd,
    kObjKey,
    kObjColon,
    kObjValue,
    kObjNext,
    kArrValueOrEnd,
    kArrValue,
    kArrNext
  };
  enum class Lex : uint8_t { kNone, kString, kNumber, kLiteral };
  bool step(uint8_t c);
  bool start_value(uint8_t c);  // c begins a value where one is expected
  void value_done();            // the innermost value ended: advance its container
  bool structural(uint8_t c);   // c outside any token

  std::array<Ctx, kMaxDepth> stack_{};
  int depth_ = 0;
  bool started_ = false, done_ = false;
  Lex lex_ = Lex::kNone;
  bool str_key_ = false, str_escape_ = false;
  int str_hex_ = 0;            // \u hex digits still expected
  int utf8_left_ = 0;          // continuation bytes still expected in a string
  uint8_t num_state_ = 0;      // see step()
  const char* lit_ = nullptr;  // the literal being read ("true", "false", "null")
  int lit_pos_ = 0;
  int spaces_ = 0;
};

// The bytes each token id decodes to (empty for ids that decode to nothing), whether it is a
// special token, and the stop token ids. Built once per tokenizer by the server.
struct TokenBytes {
  std::vector<std::string> bytes;
  std::vector<bool> special;
  // Filled by index_token_bytes: the bytes hold no '"', '\\' or control byte and are whole
  // UTF-8 characters, so the token continues any string as it is (the common case, checked
  // without walking the bytes).
  std::vector<bool> string_safe;
};

void index_token_bytes(TokenBytes& t);

class JsonObjectConstraint final : public TokenConstraint {
 public:
  JsonObjectConstraint(std::shared_ptr<const TokenBytes> vocab, std::vector<int32_t> stop_ids);
  void mask(std::span<float> logits) const override;
  void accept(int32_t token) override;

 private:
  std::shared_ptr<const TokenBytes> vocab_;
  std::vector<int32_t> stop_ids_;
  JsonMachine m_;
};

// vLLM's structured_outputs {"choice": [...]} (guided_choice): the output is exactly one of the
// strings, then a stop token. A token is allowed while the bytes so far plus its bytes are a
// prefix of some choice; stop tokens once they equal one.
class ChoiceConstraint final : public TokenConstraint {
 public:
  ChoiceConstraint(std::shared_ptr<const TokenBytes> vocab, std::vector<std::string> choices,
                   std::vector<int32_t> stop_ids);
  void mask(std::span<float> logits) const override;
  void accept(int32_t token) override;

 private:
  std::shared_ptr<const TokenBytes> vocab_;
  std::vector<std::string> choices_;
  std::vector<int32_t> stop_ids_;
  std::string out_;  // bytes generated so far
};

}  // namespace fc
