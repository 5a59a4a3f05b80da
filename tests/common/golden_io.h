// Reading the reference tensors of golden.safetensors fixtures (tools/refgen): F32 arrays and
// I64 token ids (narrowed to int32). A missing tensor is a test failure naming it.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace fc::test {

inline std::vector<float> read_f32(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo* t = f.find(name);
  EXPECT_NE(t, nullptr) << "golden tensor " << name << " missing";
  if (!t) return {};
  EXPECT_EQ(t->dtype, DType::kF32) << name;
  std::vector<float> v(t->numel);
  std::memcpy(v.data(), t->data, t->nbytes);
  return v;
}

inline std::vector<int32_t> read_ids(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo* t = f.find(name);
  EXPECT_NE(t, nullptr) << "golden tensor " << name << " missing";
  if (!t) return {};
  EXPECT_EQ(t->dtype, DType::kI64) << name;
  std::vector<int32_t> v(t->numel);
  for (size_t i = 0; i < t->numel; ++i) {
    int64_t x;
    std::memcpy(&x, t->data + 8 * i, 8);
    v[i] = static_cast<int32_t>(x);
  }
  return v;
}

}  // namespace fc::test
