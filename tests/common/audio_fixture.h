// The int16 PCM test signals of the audio fixtures (tools/refgen/make_audio_fixture.py,
// make_mixed_fixture.py: golden tensor "sig.<name>", 16 kHz mono) as float samples scaled by
// 1/32768, what a WAV decoder gives for PCM_16 and what the generators fed transformers.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace fc::test {

inline std::vector<float> fixture_signal(const SafetensorsFile& g, const std::string& name) {
  const TensorInfo* t = g.find("sig." + name);
  EXPECT_NE(t, nullptr) << "golden tensor sig." << name << " missing";
  if (!t) return {};
  EXPECT_EQ(t->dtype, DType::kI16) << name;
  std::vector<float> x(t->numel);
  for (size_t i = 0; i < t->numel; ++i) {
    int16_t v;
    std::memcpy(&v, t->data + 2 * i, 2);
    x[i] = static_cast<float>(v) / 32768.0f;
  }
  return x;
}

}  // namespace fc::test
