#include "device.hpp"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <cstdlib>
#include <thread>

#include "blas.hpp"
#include "autoguide/error.hpp"
#include "autoguide/launch.hpp"

namespace autoguide::cli {

torch::Device select_device(const std::string& name, int threads) {
  warn_if_reference_blas();
  // 0 keeps LibTorch's default (one thread per physical core): on SMT siblings that are busy elsewhere, extra
  // OpenMP threads spin against each other (measured here: 0.3 s per S forward with 1 thread, 3.4 s with 2).
  if (threads > 0) at::set_num_threads(threads);
  const int local = read_launch([](const char* v) -> const char* { return std::getenv(v); }).local_rank;
  if (name == "auto" && !torch::cuda::is_available()) return torch::kCPU;
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(name == "auto" ? "cuda" : name);
  } catch (const std::exception&) {
    throw UsageError("unknown device '" + name + "'; use cpu, cuda or cuda:N");
  }
  if (device.is_cuda()) {
    if (!torch::cuda::is_available())
      throw UsageError("--device " + name + " asked for CUDA, but this build or machine has no CUDA device; use --device cpu");
    if (!device.has_index()) device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local));
    if (device.index() >= static_cast<int>(torch::cuda::device_count()))
      throw UsageError("--device " + name + " is cuda:" + std::to_string(device.index()) + ", but there are only " +
                       std::to_string(torch::cuda::device_count()) + " CUDA devices" +
                       (local > 0 ? " (the launcher's LOCAL_RANK is " + std::to_string(local) + "; start one rank per GPU)" : ""));
  } else if (!device.is_cpu()) {
    throw UsageError("unsupported device '" + name + "'; use cpu, cuda or cuda:N");
  }
  return device;
}

}  // namespace autoguide::cli
