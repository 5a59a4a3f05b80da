#include "backend/backend.h"

#include "core/error.h"

namespace fc {

int64_t Weight::bytes() const {
  if (nvfp4()) return rows * (cols / 2 + cols / 16);
  return rows * cols * dtype_bits(dtype) / 8;
}

Weight Weight::slice_rows(int64_t r0, int64_t n) const {
  FC_CHECK(r0 >= 0 && n >= 0 && r0 + n <= rows, "Weight::slice_rows: rows [", r0, ", ", r0 + n,
           ") outside ", name, " with ", rows, " rows");
  Weight w = *this;
  if (nvfp4()) {
    w.data = static_cast<const uint8_t*>(data) + r0 * ld;
    w.block_scale = block_scale + r0 * scale_ld;
  } else {
    w.data = static_cast<const uint8_t*>(data) +
             static_cast<size_t>(r0 * ld) * static_cast<size_t>(dtype_bits(dtype)) / 8;
  }
  w.rows = n;
  return w;
}

void Backend::begin_capture() {
  fail("backend ", name(), ": no graph capture");
}
int64_t Backend::end_capture() {
  fail("backend ", name(), ": no graph capture");
}
bool Backend::replay(int64_t) {
  fail("backend ", name(), ": no graph capture");
}
void Backend::drop_graph(int64_t) {
  fail("backend ", name(), ": no graph capture");
}

}  // namespace fc
