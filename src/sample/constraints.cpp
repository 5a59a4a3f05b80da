#include "sample/constraints.h"

#include <algorithm>
#include <limits>

namespace fc {
namespace {

bool is_space(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool is_digit(uint8_t c) {
  return c >= '0' && c <= '9';
}
bool is_hex(uint8_t c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Number states: 0 after '-', 1 after a leading 0, 2 integer digits, 3 after '.', 4 fraction
// digits, 5 after 'e', 6 after the exponent sign, 7 exponent digits. 1, 2, 4, 7 may end.
bool number_can_end(uint8_t s) {
  return s == 1 || s == 2 || s == 4 || s == 7;
}

// The masking loop of both constraints: ok(t, bytes) decides every ordinary token (special and
// empty ones, and ids past the table, are masked); stop tokens are allowed exactly when
// stops_allowed, whatever their bytes.
template <typename Ok>
void mask_tokens(std::span<float> logits, const TokenBytes& vocab,
                 const std::vector<int32_t>& stop_ids, bool stops_allowed, Ok ok) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  std::vector<float> stop_logits;
  for (int32_t t : stop_ids)
    stop_logits.push_back(t >= 0 && static_cast<size_t>(t) < logits.size()
                              ? logits[static_cast<size_t>(t)]
                              : kNegInf);
  const size_t known = std::min(logits.size(), vocab.bytes.size());
  for (size_t t = 0; t < logits.size(); ++t)
    if (t >= known || vocab.special[t] || vocab.bytes[t].empty() || !ok(t, vocab.bytes[t]))
      logits[t] = kNegInf;
  for (size_t i = 0; i < stop_ids.size(); ++i) {
    const int32_t t = stop_ids[i];
    if (t >= 0 && static_cast<size_t>(t) < logits.size())
      logits[static_cast<size_t>(t)] = stops_allowed ? stop_logits[i] : kNegInf;
  }
}

}  // namespace

bool JsonMachine::feed(uint8_t c) {
  const JsonMachine saved = *this;
  if (step(c)) return true;
  *this = saved;
  return false;
}

bool JsonMachine::step(uint8_t c) {
  switch (lex_) {
    case Lex::kString:
      if (utf8_left_ > 0) {
        if ((c & 0xC0) != 0x80) return false;
        --utf8_left_;
        return true;
      }
      if (str_hex_ > 0) {
        if (!is_hex(c)) return false;
        --str_hex_;
        return true;
      }
      if (str_escape_) {
        str_escape_ = false;
        if (c == 'u') {
          str_hex_ = 4;
          return true;
        }
        return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
               c == 't';
      }
      if (c == '"') {
        lex_ = Lex::kNone;
        if (str_key_) {
          stack_[static_cast<size_t>(depth_ - 1)] = Ctx::kObjColon;
        } else {
          value_done();
        }
        return true;
      }
      if (c == '\\') {
        str_escape_ = true;
        return true;
      }
      if (c < 0x20) return false;  // control characters must be escaped
      if (c >= 0x80) {             // a UTF-8 lead byte
        if (c >= 0xC2 && c <= 0xDF) {
          utf8_left_ = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
          utf8_left_ = 2;
        } else if (c >= 0xF0 && c <= 0xF4) {
          utf8_left_ = 3;
        } else {
          return false;
        }
      }
      return true;
    case Lex::kLiteral:
      if (c != static_cast<uint8_t>(lit_[lit_pos_])) return false;
      if (lit_[++lit_pos_] == '\0') {
        lex_ = Lex::kNone;
        value_done();
      }
      return true;
    case Lex::kNumber: {
      uint8_t& s = num_state_;
      if (is_digit(c)) {
        if (s == 1) return false;  // no digits after a leading 0
        if (s == 0) {
          s = c == '0' ? 1 : 2;
        } else if (s == 3) {
          s = 4;
        } else if (s == 5 || s == 6) {
          s = 7;
        }
        return true;
      }
      if (c == '.' && (s == 1 || s == 2)) {
        s = 3;
        return true;
      }
      if ((c == 'e' || c == 'E') && (s == 1 || s == 2 || s == 4)) {
        s = 5;
        return true;
      }
      if ((c == '+' || c == '-') && s == 5) {
        s = 6;
        return true;
      }
      if (!number_can_end(s)) return false;
      lex_ = Lex::kNone;  // the number ended; c belongs to the structure around it
      value_done();
      return structural(c);
    }
    case Lex::kNone:
      return structural(c);
  }
  return false;
}

void JsonMachine::value_done() {
  if (depth_ == 0) {
    done_ = true;
    return;
  }
  Ctx& top = stack_[static_cast<size_t>(depth_ - 1)];
  top = top == Ctx::kObjValue ? Ctx::kObjNext : Ctx::kArrNext;
}

bool JsonMachine::start_value(uint8_t c) {
  if (c == '{' || c == '[') {
    if (depth_ == kMaxDepth) return false;
    stack_[static_cast<size_t>(depth_++)] = c == '{' ? Ctx::kObjKeyOrEnd : Ctx::kArrValueOrEnd;
    return true;
  }
  if (c == '"') {
    lex_ = Lex::kString;
    str_key_ = false;
    return true;
  }
  if (c == '-' || is_digit(c)) {
    lex_ = Lex::kNumber;
    num_state_ = c == '-' ? 0 : c == '0' ? 1 : 2;
    return true;
  }
  lit_ = c == 't' ? "true" : c == 'f' ? "false" : c == 'n' ? "null" : nullptr;
  if (!lit_) return false;
  lex_ = Lex::kLiteral;
  lit_pos_ = 1;
  return true;
}

bool JsonMachine::structural(uint8_t c) {
  if (is_space(c)) {
    if (!started_ || done_ || spaces_ == kMaxSpaceRun) return false;
    ++spaces_;
    return true;
  }
  spaces_ = 0;
  if (done_) return false;
  if (!started_) {  // the output is one object
    if (c != '{') return false;
    started_ = true;
    stack_[0] = Ctx::kObjKeyOrEnd;
    depth_ = 1;
    return true;
  }
  Ctx& top = stack_[static_cast<size_t>(depth_ - 1)];
  auto close = [&] {
    --depth_;
    value_done();
    return true;
  };
  switch (top) {
    case Ctx::kObjKeyOrEnd:
      if (c == '}') return close();
      [[fallthrough]];
    case Ctx::kObjKey:
      if (c != '"') return false;
      lex_ = Lex::kString;
      str_key_ = true;
      return true;
    case Ctx::kObjColon:
      if (c != ':') return false;
      top = Ctx::kObjValue;
      return true;
    case Ctx::kObjValue:
      return start_value(c);
    case Ctx::kObjNext:
      if (c == '}') return close();
      if (c != ',') return false;
      top = Ctx::kObjKey;
      return true;
    case Ctx::kArrValueOrEnd:
      if (c == ']') return close();
      return start_value(c);
    case Ctx::kArrValue:
      return start_value(c);
    case Ctx::kArrNext:
      if (c == ']') return close();
      if (c != ',') return false;
      top = Ctx::kArrValue;
      return true;
  }
  return false;
}

void index_token_bytes(TokenBytes& t) {
  t.string_safe.assign(t.bytes.size(), false);
  for (size_t i = 0; i < t.bytes.size(); ++i) {
    const std::string& b = t.bytes[i];
    bool ok = !b.empty() && !(i < t.special.size() && t.special[i]);
    int cont = 0;
    for (size_t j = 0; ok && j < b.size(); ++j) {
      const uint8_t c = static_cast<uint8_t>(b[j]);
      if (cont > 0) {
        ok = (c & 0xC0) == 0x80;
        --cont;
      } else if (c < 0x20 || c == '"' || c == '\\') {
        ok = false;
      } else if (c >= 0x80) {
        cont = c >= 0xC2 && c <= 0xDF   ? 1
               : c >= 0xE0 && c <= 0xEF ? 2
               : c >= 0xF0 && c <= 0xF4 ? 3
                                        : -1;
        ok = cont > 0;
      }
    }
    t.string_safe[i] = ok && cont == 0;
  }
}

JsonObjectConstraint::JsonObjectConstraint(std::shared_ptr<const TokenBytes> vocab,
                                           std::vector<int32_t> stop_ids)
    : vocab_(std::move(vocab)), stop_ids_(std::move(stop_ids)) {}

void JsonObjectConstraint::mask(std::span<float> logits) const {
  const bool plain = m_.in_plain_string() && vocab_->string_safe.size() == vocab_->bytes.size();
  const bool done = m_.complete();
  mask_tokens(logits, *vocab_, stop_ids_, done, [&](size_t t, const std::string& b) {
    if (done) return false;
    if (plain && vocab_->string_safe[t]) return true;
    JsonMachine probe = m_;
    for (char ch : b)
      if (!probe.feed(static_cast<uint8_t>(ch))) return false;
    return true;
  });
}

void JsonObjectConstraint::accept(int32_t token) {
  if (token < 0 || static_cast<size_t>(token) >= vocab_->bytes.size()) return;
  for (char ch : vocab_->bytes[static_cast<size_t>(token)]) m_.feed(static_cast<uint8_t>(ch));
}

ChoiceConstraint::ChoiceConstraint(std::shared_ptr<const TokenBytes> vocab,
                                   std::vector<std::string> choices, std::vector<int32_t> stop_ids)
    : vocab_(std::move(vocab)), choices_(std::move(choices)), stop_ids_(std::move(stop_ids)) {}

void ChoiceConstraint::mask(std::span<float> logits) const {
  // The choices still possible, and whether the output already is one.
  std::vector<const std::string*> live;
  bool whole = false;
  for (const std::string& c : choices_)
    if (c.size() >= out_.size() && c.compare(0, out_.size(), out_) == 0) {
      live.push_back(&c);
      whole = whole || c.size() == out_.size();
    }
  mask_tokens(logits, *vocab_, stop_ids_, whole, [&](size_t, const std::string& b) {
    for (const std::string* c : live)
      if (c->size() >= out_.size() + b.size() && c->compare(out_.size(), b.size(), b) == 0)
        return true;
    return false;
  });
}

void ChoiceConstraint::accept(int32_t token) {
  if (token >= 0 && static_cast<size_t>(token) < vocab_->bytes.size() &&
      !vocab_->special[static_cast<size_t>(token)])
    out_ += vocab_->bytes[static_cast<size_t>(token)];
}

}  // namespace fc
