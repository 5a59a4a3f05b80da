// Shared helpers of the libFuzzer targets (docs/testing.md). A target calls the code under
// test with the fuzzer's bytes and lets only the documented error types escape into a catch;
// anything else (another exception type, a crash, a sanitizer report, a broken invariant checked
// with FUZZ_CHECK) is a finding.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

// Aborts with a message: libFuzzer records the input as a crash.
#define FUZZ_CHECK(cond, msg)                                                                \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s (%s:%d): %s\n", #cond, __FILE__, __LINE__, \
                   std::string(msg).c_str());                                                \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

namespace fc::fuzz {

// The source tree (set by CMake) for fixtures the targets load once at start-up.
inline std::string source_dir() {
  return FC_SOURCE_DIR;
}

// Splits `data` at the first occurrence of `sep` (a byte sequence unlikely in real inputs):
// before, after. Without `sep`, everything is `before`.
inline std::pair<std::string_view, std::string_view> split_once(std::string_view data,
                                                                std::string_view sep) {
  const size_t at = data.find(sep);
  if (at == std::string_view::npos) return {data, {}};
  return {data.substr(0, at), data.substr(at + sep.size())};
}

// Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF).
inline bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int n = 0;
    char32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

// Reads a fuzz input front to back: fixed-size little-endian integers, then the rest as bytes
// (the layout tests/fuzz/make_seeds.py writes; a short input reads as zeros).
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  template <typename T>
  T take() {
    uint64_t v = 0;
    for (size_t k = 0; k < sizeof(T) && pos_ < size_; ++k) v |= uint64_t{data_[pos_++]} << (8 * k);
    return static_cast<T>(v);
  }
  std::string rest() {
    return std::string(reinterpret_cast<const char*>(data_) + pos_, size_ - pos_);
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Moves `at` forward to the next UTF-8 character boundary of `s` (or its end).
inline size_t utf8_boundary(std::string_view s, size_t at) {
  while (at < s.size() && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) ++at;
  return at;
}

}  // namespace fc::fuzz
