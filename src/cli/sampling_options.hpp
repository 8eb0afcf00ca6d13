// What the sampling options (seeds, sampler, schedule, interval, precision, device) come to, every check done
// before any net is loaded. Shared by generate, sweep and compare.
#pragma once
#include <torch/types.h>

#include <string>

#include "autoguide/generate.hpp"
#include "autoguide/model.hpp"
#include "autoguide/phema.hpp"
#include "options.hpp"

namespace autoguide::cli {

struct SamplingSetup {
  GenerateRequest base;  // seeds, class, batch, sampler, schedule, interval; guidance 1
  torch::Device device{torch::kCPU};
  NetPrecision precision = NetPrecision::Auto, vae_precision = NetPrecision::FP32;
  int vae_batch = 4;
  bool fast = false;   // --fast: the native U-Net (fast_unet.hpp)
  std::string models;  // where presets' files are looked up
  int64_t ema_memory = kDefaultEmaMemory;  // bytes: a larger snapshot set is streamed (--ema-memory)
};

// `seeds`: the seed list to use (the command may derive it from other options, e.g. --num); `shard`: this
// rank's share of them.
SamplingSetup resolve_sampling(const Params& o, const std::string& seeds, const Shard& shard);

}  // namespace autoguide::cli
