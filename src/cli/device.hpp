// --device and --threads, shared by the subcommands that run networks.
#pragma once
#include <CLI/CLI.hpp>
#include <torch/types.h>

#include <string>

namespace autoguide::cli {

void add_device_options(CLI::App& cmd, std::string& device, int& threads);

// "auto" = CUDA when available, else CPU. Sets the CPU thread count (0 = all cores). Throws UsageError.
torch::Device select_device(const std::string& name, int threads);

}  // namespace autoguide::cli
