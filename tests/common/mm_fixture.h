// The images of the mm-31b / mm-e2b fixtures (tools/refgen/make_vision_fixtures.py) as the
// engine's media inputs: the processor's padded pixel values and (-1, -1)-padded positions cut to
// the real patches, the grid read off the positions.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/gemma4/media.h"
#include "tests/common/golden_io.h"

namespace fc::test {

inline std::shared_ptr<gemma4::MediaInput> fixture_image(const SafetensorsFile& g, int i,
                                                         int pool = 3) {
  const std::string p = "img" + std::to_string(i) + ".";
  const std::vector<float> pv = read_f32(g, p + "pixel_values");
  const TensorInfo* pos = g.find(p + "position_ids");
  EXPECT_NE(pos, nullptr) << p << "position_ids";
  if (!pos) return nullptr;
  const int32_t* pp = reinterpret_cast<const int32_t*>(pos->data);
  const int64_t rows = pos->shape[0], dim = static_cast<int64_t>(pv.size()) / rows;
  auto m = std::make_shared<gemma4::MediaInput>();
  m->modality = "image";
  int64_t n = 0;
  while (n < rows && pp[2 * n] >= 0) ++n;
  for (int64_t r = 0; r < n; ++r) {
    m->grid_w = std::max(m->grid_w, pp[2 * r] + 1);
    m->grid_h = std::max(m->grid_h, pp[2 * r + 1] + 1);
  }
  m->features.assign(pv.begin(), pv.begin() + n * dim);
  m->positions.assign(pp, pp + 2 * n);
  m->num_tokens = static_cast<int>(n / (pool * pool));
  return m;
}

}  // namespace fc::test
