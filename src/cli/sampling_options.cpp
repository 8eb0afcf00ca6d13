#include "sampling_options.hpp"

#include <algorithm>

#include "autoguide/error.hpp"
#include "autoguide/seeds.hpp"
#include "device.hpp"
#include "option_values.hpp"

namespace autoguide::cli {

SamplingSetup resolve_sampling(const Params& o, const std::string& seeds, const Shard& shard) {
  SamplingSetup s;
  GenerateRequest& req = s.base;
  req.seeds = parse_seed_list(seeds);
  req.shard = shard;
  req.class_idx = o.class_idx;
  req.max_batch = o.batch;
  req.sampler = o.sampler;
  req.sampler.kind = parse_sampler(o.sampler_name);
  if (!o.interval_sigma.empty() && !o.interval_steps.empty())
    throw UsageError("give either --interval-sigma or --interval-steps, not both");
  if (!o.interval_sigma.empty()) req.interval = parse_interval_sigma(o.interval_sigma);
  if (!o.interval_steps.empty()) req.interval = parse_interval_steps(o.interval_steps);
  validate(req.sampler);
  req.interval.validate(req.sampler.schedule.num_steps);
  s.device = select_device(o.device, o.threads);
  s.precision = parse_precision(o.dtype);
  check_precision_runs(s.precision, s.device, "precision");
  s.vae_precision = parse_precision(o.vae_dtype, "--vae-dtype");
  check_precision_runs(s.vae_precision, s.device, "vae_precision");
  s.fast = o.fast;
  s.vae_batch = o.vae_batch;
  s.models = o.models;
  s.ema_memory = std::min<int64_t>(o.ema_memory, int64_t{1} << 40) << 20;  // beyond any memory, no overflow
  return s;
}

}  // namespace autoguide::cli
