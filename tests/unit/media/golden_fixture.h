// A media golden fixture folder: its files and golden.safetensors with a JSON "manifest" in the
// metadata (tools/refgen/make_vision_preproc.py, make_video_fixtures.py).
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace fc::media::testing {

inline std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return {std::istreambuf_iterator<char>(f), {}};
}

struct GoldenFixture {
  explicit GoldenFixture(const std::string& dir)
      : f(SafetensorsFile::open(dir + "golden.safetensors")),
        manifest(nlohmann::json::parse(f->metadata().at("manifest"))) {}
  std::unique_ptr<SafetensorsFile> f;
  nlohmann::json manifest;
  const TensorInfo& t(const std::string& name) const {
    const TensorInfo* p = f->find(name);
    if (!p) throw std::runtime_error("golden tensor " + name + " missing");
    return *p;
  }
};

}  // namespace fc::media::testing
