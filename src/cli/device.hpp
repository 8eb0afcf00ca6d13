// The device a command computes on, from --device and --threads.
#pragma once
#include <torch/types.h>

#include <string>

namespace autoguide::cli {

// "auto" = CUDA when available, else CPU; under a launcher "auto" and "cuda" mean the GPU of the process's
// local rank (cuda:LOCAL_RANK, as EDM2). Sets the CPU thread count (0 = all cores). Throws UsageError.
torch::Device select_device(const std::string& name, int threads);

}  // namespace autoguide::cli
