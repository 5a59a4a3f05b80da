// Host-side checks shared by the CUDA backend's translation units.
#pragma once

#include <string>

#include "backend/cuda/kernels.h"
#include "core/dtype.h"

namespace fc::cuda {

// After each launch: configuration errors surface here (fc::Error naming `op`), not at the next
// synchronisation.
void ck_launch(const char* op);

// The kernels' element type of a weight / table dtype; FP8 only where `allow_fp8` (weights), else
// an fc::Error naming `what` and the dtype.
WDType wdt_of(DType d, const std::string& what, bool allow_fp8 = true);

}  // namespace fc::cuda
