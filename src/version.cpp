#include "autoguide/version.hpp"

#include <torch/cuda.h>
#include <torch/version.h>

namespace autoguide {

const char* version() { return AUTOGUIDE_VERSION; }

std::string build_info() {
  std::string cuda = "not available";
  if (torch::cuda::is_available()) {
    const auto n = torch::cuda::device_count();
    cuda = "available (" + std::to_string(n) + (n == 1 ? " device)" : " devices)");
  }
  return std::string("autoguide ") + version() + "\ncommit " + git_commit() + "\nLibTorch " TORCH_VERSION "\nCUDA " + cuda;
}

}  // namespace autoguide
