// Samplers on the EDM (Karras) schedule: EDM's 2nd-order Heun with optional churn (Karras et al. 2022,
// Algorithm 2) as EDM2 runs it, 1st-order Euler, and DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2).
#pragma once
#include <torch/types.h>

#include <functional>
#include <limits>
#include <string>

#include "autoguide/schedule.hpp"

namespace autoguide {

enum class SamplerKind { Heun, Euler, DpmPP2M };

std::string to_string(SamplerKind k);

struct SamplerOptions {
  SamplerKind kind = SamplerKind::Heun;
  ScheduleOptions schedule;
  double S_churn = 0;
  double S_min = 0;
  double S_max = std::numeric_limits<double>::infinity();
  double S_noise = 1;
};

void validate(const SamplerOptions& o);

// Network evaluations per sample: 2N-1 for Heun, N for Euler and DPM-Solver++(2M).
int evaluations_per_sample(const SamplerOptions& o);

// D(x; sigma) for the whole batch during step `step` (sigma_step -> sigma_step+1); sigma is a 0-dim float32
// tensor. Both evaluations of a Heun step carry the same step index.
using DenoiseFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& sigma, int step)>;
// Fresh standard normal noise shaped like x, from the per-seed generators (only drawn when churn is active).
using NoiseFn = std::function<torch::Tensor(const torch::Tensor& x)>;
// Called after step i of n has finished.
using StepObserver = std::function<void(int step, int num_steps)>;

// Returns the final sample x_N (float32, like `noise`).
torch::Tensor edm_sample(const DenoiseFn& denoise, const torch::Tensor& noise, const SamplerOptions& opts,
                         const NoiseFn& randn_like, const StepObserver& observer = nullptr);

}  // namespace autoguide
