// --detector, --ref and --num: the Fréchet distance that sweep and compare measure for each setting while
// sampling, on the decoded images. --detector/--ref pairs repeat: each pair is a feature space, as the paper
// reports FID and FD_DINOv2 side by side.
#pragma once
#include <torch/types.h>

#include <array>
#include <string>
#include <vector>

#include "autoguide/detector.hpp"
#include "autoguide/fd_uncertainty.hpp"
#include "autoguide/feature_store.hpp"
#include "autoguide/metrics.hpp"
#include "options.hpp"

namespace autoguide::cli {

// A --ref per --detector, in order, no detector twice.
void check_spaces(const Params& o);

// The seed list: --seeds, else 0..N-1 with --num N, else the --seeds default. Checks the FD options together
// (a --ref per --detector, enough samples, --num agreeing with --seeds).
std::string fd_seeds(const Params& o);

// One feature space: a detector and the reference statistics in its features, checked on blank images of the
// shape the settings will make. Named after the detector's file (its path where two share a file name).
struct FdSpace {
  std::string name;
  Detector detector;
  FeatureStats ref;
  std::string ref_path;
};

// What sweep and compare measure: the feature spaces, how FDs are estimated (--resamples, --confidence), and
// the settings' features (kept for the paired differences, beyond --features-memory in `spill_dir`).
struct FdRun {
  std::vector<FdSpace> spaces;
  FdSettings settings;
  FeatureStore features;

  // FD(a) - FD(b) in space k of the features kept under keys a and b.
  FdDifference difference(size_t k, const std::string& a, const std::string& b) const;
};
FdRun open_fd(const Params& o, const torch::Device& device, const std::array<int64_t, 3>& images,
              const std::string& spill_dir);

// --resamples and --confidence.
FdSettings fd_settings(const Params& o);

// "fd 2.5" for one space, "fd[detector] 2.5, fd[encoder] 1.1" for several: how summaries name FDs.
std::string fd_label(const std::vector<FdSpace>& spaces, size_t k);

}  // namespace autoguide::cli
