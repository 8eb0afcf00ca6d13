// --device, --threads and --dist-timeout, shared by the subcommands that run networks.
#pragma once
#include <CLI/CLI.hpp>
#include <torch/types.h>

#include <string>

namespace autoguide::cli {

// dist_timeout: under a launcher, the seconds after which a silent rank counts as dead (ranks.hpp).
void add_device_options(CLI::App& cmd, std::string& device, int& threads, double& dist_timeout);

// "auto" = CUDA when available, else CPU; under a launcher "auto" and "cuda" mean the GPU of the process's
// local rank (cuda:LOCAL_RANK, as EDM2). Sets the CPU thread count (0 = all cores). Throws UsageError.
torch::Device select_device(const std::string& name, int threads);

}  // namespace autoguide::cli
