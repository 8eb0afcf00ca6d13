// EDM's 2nd-order Heun sampler with optional churn (Karras et al. 2022, Algorithm 2), as EDM2 runs it.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <limits>

#include "autoguide/schedule.hpp"

namespace autoguide {

struct SamplerOptions {
  ScheduleOptions schedule;
  double S_churn = 0;
  double S_min = 0;
  double S_max = std::numeric_limits<double>::infinity();
  double S_noise = 1;
};

void validate(const SamplerOptions& o);

// D(x; sigma) for the whole batch; sigma is a 0-dim float32 tensor.
using DenoiseFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& sigma)>;
// Fresh standard normal noise shaped like x, from the per-seed generators (only drawn when churn is active).
using NoiseFn = std::function<torch::Tensor(const torch::Tensor& x)>;
// Called after step i of n has finished.
using StepObserver = std::function<void(int step, int num_steps)>;

// Returns the final sample x_N (float32, like `noise`).
torch::Tensor edm_sample(const DenoiseFn& denoise, const torch::Tensor& noise, const SamplerOptions& opts,
                         const NoiseFn& randn_like, const StepObserver& observer = nullptr);

}  // namespace autoguide
