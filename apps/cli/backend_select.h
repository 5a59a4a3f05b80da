// Picks the compute backend for `--device cpu|cuda`.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace fc::cli {

// device "cpu": a CpuBackend over `pool`; "cuda": a CudaBackend on GPU 0 (fails with a clear
// fc::Error when this build has no CUDA backend or the machine has no usable GPU). w4a4: NVFP4
// activation-QDQ emulation (--nvfp4-mode w4a4) on either backend. prefill_int8: the CPU
// backend's opt-in int8 NVFP4 prefill (--cpu-prefill-int8, not exact; CpuOptions), decode_int8
// the same for decode-sized steps (--cpu-decode-int8); each an error with --device cuda.
// weights_mmap: the CPU backend uses the weights in place from the checkpoint mapping instead of
// copying them to huge pages (--cpu-weights-mmap; CpuOptions::copy_weights).
std::unique_ptr<Backend> make_backend(const std::string& device, ThreadPool& pool, bool w4a4,
                                      bool prefill_int8 = false, bool decode_int8 = false,
                                      bool weights_mmap = false);

}  // namespace fc::cli
