// The options every sampling command (generate, sweep, compare) shares, declared once: seeds and classes,
// batch, sampler and schedule, guidance interval, precision, the VAE, the models folder, device and threads.
// A new option common to the three commands is one line in add_sampling_options and a field here.
#pragma once
#include <CLI/CLI.hpp>
#include <torch/types.h>

#include <string>

#include "autoguide/generate.hpp"
#include "autoguide/model.hpp"

namespace autoguide::cli {

struct SamplingOptions {
  std::string seeds;  // the command sets its default before add_sampling_options
  std::string sampler_name = "heun", interval_sigma, interval_steps, dtype = "auto";
  std::string vae, vae_dtype = "fp32", models, device = "auto";
  int class_idx = -1, batch = 32, vae_batch = 4, threads = 0;  // vae_batch: EDM2's encoder_batch_size
  double dist_timeout = 1800;  // seconds (ranks.hpp)
  bool quiet = false, fast = false;
  SamplerOptions sampler;
  CLI::Option *seeds_opt = nullptr, *vae_opt = nullptr;

  bool seeds_given() const { return seeds_opt && seeds_opt->count() > 0; }
  bool vae_given() const { return vae_opt && vae_opt->count() > 0; }
};

void add_sampling_options(CLI::App& cmd, SamplingOptions& o, const std::string& seeds_help);

// A CLI11 check for whole numbers >= n: "--batch: must be a whole number >= 1 (got 0)". (CLI11's own
// PositiveNumber prints the double range up to 1.8e308 in full.)
CLI::Validator at_least(int64_t n);

// What the options come to, every check done before any net is loaded.
struct SamplingSetup {
  GenerateRequest base;  // seeds, class, batch, sampler, schedule, interval; guidance 1
  torch::Device device{torch::kCPU};
  NetPrecision precision = NetPrecision::Auto, vae_precision = NetPrecision::FP32;
  int vae_batch = 4;
  bool fast = false;  // --fast: the native U-Net (fast_unet.hpp)
  std::string models;  // where presets' files are looked up
};

// `seeds`: the seed list to use (the command may derive it from other options, e.g. --num); `shard`: this
// rank's share of them.
SamplingSetup resolve_sampling(const SamplingOptions& o, const std::string& seeds, const Shard& shard);

}  // namespace autoguide::cli
