#include "sampling_options.hpp"

#include "autoguide/error.hpp"
#include "autoguide/preset.hpp"
#include "autoguide/seeds.hpp"
#include "device.hpp"

namespace autoguide::cli {

CLI::Validator at_least(int64_t n) {
  return CLI::Validator(
      [n](std::string& text) -> std::string {
        try {
          size_t used = 0;
          if (std::stoll(text, &used) >= n && used == text.size()) return "";
        } catch (const std::exception&) {
        }
        return "must be a whole number >= " + std::to_string(n) + " (got " + text + ")";
      },
      "INT>=" + std::to_string(n));
}

void add_sampling_options(CLI::App& cmd, SamplingOptions& o, const std::string& seeds_help) {
  auto& s = o.sampler;
  o.seeds_opt = cmd.add_option("--seeds", o.seeds, seeds_help)->capture_default_str();
  cmd.add_option("--class", o.class_idx, "Class label (default: drawn from each seed)");
  cmd.add_option("--batch", o.batch, "Maximum batch size")->check(at_least(1))->capture_default_str();
  cmd.add_option("--sampler", o.sampler_name, "heun (EDM2's), euler or dpmpp2m")->capture_default_str();
  cmd.add_option("--steps", s.schedule.num_steps, "Number of sampling steps")->check(at_least(1))->capture_default_str();
  cmd.add_option("--sigma_min,--sigma-min", s.schedule.sigma_min, "Lowest noise level")->capture_default_str();
  cmd.add_option("--sigma_max,--sigma-max", s.schedule.sigma_max, "Highest noise level")->capture_default_str();
  cmd.add_option("--rho", s.schedule.rho, "Time step exponent")->capture_default_str();
  cmd.add_option("--S_churn,--S-churn,--s-churn", s.S_churn, "Stochasticity strength")->capture_default_str();
  cmd.add_option("--S_min,--S-min,--s-min", s.S_min, "Stochasticity min noise level")->capture_default_str();
  cmd.add_option("--S_max,--S-max,--s-max", s.S_max, "Stochasticity max noise level")->capture_default_str();
  cmd.add_option("--S_noise,--S-noise,--s-noise", s.S_noise, "Stochasticity noise inflation")->capture_default_str();
  cmd.add_option("--interval-sigma,--interval_sigma", o.interval_sigma, "Guide only where sigma_i is in (LO,HI], e.g. 0.28,2.9");
  cmd.add_option("--interval-steps,--interval_steps", o.interval_steps, "Guide only on steps A..B (inclusive), e.g. 17,22");
  cmd.add_option("--dtype", o.dtype, "Network precision: auto (fp16 on CUDA, fp32 on CPU, as EDM2), fp32, fp16, bf16")->capture_default_str();
  o.vae_opt = cmd.add_option("--vae", o.vae, "VAE decoder for latent (ImageNet-512) nets (.pt from scripts/export_vae.py)");
  cmd.add_flag("--fast", o.fast,
               "Run the U-Net natively (1x1 convolutions and attention as batched products); not bit-identical "
               "to EDM2's images, which the default keeps; no faster on AVX2-only CPUs (docs/benchmarks.md)");
  cmd.add_option("--vae-batch,--vae_batch", o.vae_batch, "Images per VAE decode call (EDM2's encoder batch)")
      ->check(at_least(1))->capture_default_str();
  cmd.add_option("--vae-dtype,--vae_dtype", o.vae_dtype, "VAE precision: fp32 (EDM2's), bf16, fp16")->capture_default_str();
  cmd.add_option("--models", o.models, "Folder of converted models for --preset (default $AUTOGUIDE_MODELS or ./models)");
  add_device_options(cmd, o.device, o.threads, o.dist_timeout);
  cmd.add_flag("--quiet,-q", o.quiet, "No progress or summary on stderr");
}

SamplingSetup resolve_sampling(const SamplingOptions& o, const std::string& seeds, const Shard& shard) {
  SamplingSetup s;
  s.base.seeds = parse_seed_list(seeds);
  s.base.shard = shard;
  s.base.class_idx = o.class_idx;
  s.base.max_batch = o.batch;
  s.base.sampler = o.sampler;
  set_sampling(s.base, o.sampler_name, o.interval_sigma, o.interval_steps);
  if (o.class_idx < -1) throw UsageError("--class must be a class index >= 0");
  s.device = select_device(o.device, o.threads);
  s.precision = parse_precision(o.dtype, s.device);
  s.vae_precision = parse_precision(o.vae_dtype, s.device, "--vae-dtype");
  s.fast = o.fast;
  s.vae_batch = o.vae_batch;
  s.models = models_dir(o.models);
  return s;
}

}  // namespace autoguide::cli
