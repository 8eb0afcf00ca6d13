// --detector, --ref and --num: the Fréchet distance that sweep and compare measure for each setting while
// sampling, on the decoded images.
#pragma once
#include <CLI/CLI.hpp>
#include <torch/types.h>

#include <array>
#include <optional>
#include <string>

#include "autoguide/detector.hpp"
#include "autoguide/metrics.hpp"
#include "sampling_options.hpp"

namespace autoguide::cli {

struct FdOptions {
  std::string detector, ref;
  int64_t num = 0;
};

void add_fd_options(CLI::App& cmd, FdOptions& o);

// The seed list: --seeds, else 0..N-1 with --num N, else the --seeds default. Checks the FD options together
// (both files, enough samples, --num agreeing with --seeds).
std::string fd_seeds(const FdOptions& fd, const SamplingOptions& sampling);

// The detector and reference statistics, checked on blank images of the shape the settings will make.
struct FdSetup {
  Detector detector;
  FeatureStats ref;
  std::string ref_path;
};
std::optional<FdSetup> open_fd(const FdOptions& o, const torch::Device& device, const std::array<int64_t, 3>& images);

}  // namespace autoguide::cli
