// Guidance sweeps and comparisons: several settings (guide, weight, mode) sampled on one list of seeds, so
// every setting starts from the same noise and classes and differs only in its guidance.
#pragma once
#include <torch/types.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autoguide/generate.hpp"

namespace autoguide {

// "2.10": at least two decimals, more where the value needs them to read back as the same double ("1.125").
std::string format_weight(double w);

// One row: the nets and weights it samples with, and its label.
struct Setting {
  std::string label;
  Nets nets;
  double guidance = 1;
  double alpha = std::nan("");  // the CFG + autoguidance mix (with nets.uncond); NaN = off

  // `base` (seeds, classes, sampler, interval, batch) with this setting's guidance and alpha.
  GenerateRequest request(const GenerateRequest& base) const;
};

// validate() for every setting, before any of them runs.
void validate(const std::vector<Setting>& settings, const GenerateRequest& base);

struct SettingRun {
  GuidanceMode mode = GuidanceMode::None;
  torch::Tensor preview;  // uint8 [K,C,H,W]: the images of the first seeds that this rank made, for the grid
  std::vector<int64_t> preview_positions;  // their positions in the seed list
  GenerateProgress done;
  double seconds = 0;
};

// Samples base.shard's part of one setting on base's seeds, decoding with the decoder of its main net; keeps
// the images of the first `preview` seeds of the list that it made. `sink` (writing PNGs, feature
// statistics, ...) may be null.
SettingRun run_setting(const Setting& setting, const GenerateRequest& base, PixelDecoder& decoder,
                       int64_t preview, const PixelSink& sink, const ProgressFn& progress = nullptr);

}  // namespace autoguide
