// The EDM time-step discretization (Karras et al. 2022, Eq. 5).
#pragma once
#include <torch/torch.h>

namespace autoguide {

struct ScheduleOptions {
  int num_steps = 32;
  double sigma_min = 0.002;
  double sigma_max = 80;
  double rho = 7;
};

// Throws UsageError when the options cannot form a schedule.
void validate(const ScheduleOptions& s);

// [num_steps + 1] float32 sigmas, sigma_max down to sigma_min, then t_N = 0. Computed in float32 tensors with
// double constants, as the reference does, so the steps match it bit for bit.
torch::Tensor karras_sigmas(const ScheduleOptions& s, const torch::Device& device);

}  // namespace autoguide
