// Fuzzes the safetensors reader (src/io/safetensors.h): the 8-byte length prefix, the JSON
// header (duplicates, depth, dtypes, shapes, offsets, metadata) and the tensor table. The input
// is the whole file; it is handed to SafetensorsFile::open through a memfd. A rejected file must
// be an fc::Error; an accepted one must describe tensors that lie inside the file, which the
// target checks by reading every byte of every tensor (ASan reports any read outside the map).
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "core/error.h"
#include "io/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd_create("fuzz.safetensors", 0);
  FUZZ_CHECK(fd >= 0, "memfd_create");
  size_t off = 0;
  while (off < size) {
    const ssize_t n = write(fd, data + off, size - off);
    FUZZ_CHECK(n > 0, "write");
    off += static_cast<size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    auto f = fc::SafetensorsFile::open(path);
    uint64_t total = 0;
    uint8_t acc = 0;
    for (const fc::TensorInfo& t : f->tensors()) {
      FUZZ_CHECK(f->find(t.name) == &t, "find() does not return the listed tensor");
      for (uint64_t i = 0; i < t.nbytes; ++i) acc ^= t.data[i];
      total += t.nbytes;
      (void)fc::shape_str(t.shape);
    }
    FUZZ_CHECK(total <= size, "tensors cover more bytes than the file has");
    (void)acc;
  } catch (const fc::Error&) {
  }
  close(fd);
  return 0;
}
