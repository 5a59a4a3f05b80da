#include "apps/cli/backend_select.h"

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/log.h"
#ifdef FOURCAST_HAS_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace fc::cli {

std::unique_ptr<Backend> make_backend(const std::string& device, ThreadPool& pool, bool w4a4,
                                      bool prefill_int8, bool decode_int8, bool weights_mmap) {
  if (device == "cpu") {
    cpu::CpuOptions o;
    o.emulate_w4a4 = w4a4;
    o.prefill_int8 = prefill_int8;
    o.decode_int8 = decode_int8;
    o.copy_weights = !weights_mmap;
    if (prefill_int8) log_line(LogLevel::kInfo, "NVFP4 prefill: int8 activations (not exact)");
    if (decode_int8) log_line(LogLevel::kInfo, "NVFP4 decode: int8 activations (not exact)");
    return std::make_unique<cpu::CpuBackend>(pool, o);
  }
  if (device != "cuda") fail("--device ", device, ": not one of cpu, cuda");
  if (prefill_int8) fail("--cpu-prefill-int8: applies to --device cpu only");
  if (decode_int8) fail("--cpu-decode-int8: applies to --device cpu only");
  if (weights_mmap) fail("--cpu-weights-mmap: applies to --device cpu only");
#ifdef FOURCAST_HAS_CUDA
  cuda::CudaOptions o;
  o.emulate_w4a4 = w4a4;
  auto be = std::make_unique<cuda::CudaBackend>(o);  // throws naming the problem without a GPU
  log_line(LogLevel::kInfo, "device: " + be->device_description());
  return be;
#else
  fail(
      "--device cuda: this fourcast was built without CUDA (configure with a CUDA compiler, "
      "-DFOURCAST_CUDA=ON)");
#endif
}

}  // namespace fc::cli
