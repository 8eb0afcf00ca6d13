// The EDM time-step discretization (Karras et al. 2022, Eq. 5) and where along it guidance applies.
#pragma once
#include <torch/types.h>

#include <string>

namespace autoguide {

struct ScheduleOptions {
  int num_steps = 32;
  double sigma_min = 0.002;
  double sigma_max = 80;
  double rho = 7;
};

// The fewest steps a schedule has: the last step goes to sigma_min, the step before from sigma_max.
inline constexpr int kMinSteps = 2;
void check_num_steps(int num_steps);  // throws FieldError below kMinSteps

// Throws FieldError when the options cannot form a schedule.
void validate(const ScheduleOptions& s);

// [num_steps + 1] float32 sigmas, sigma_max down to sigma_min, then t_N = 0. Computed in float32 tensors with
// double constants, as the reference does, so the steps match it bit for bit.
torch::Tensor karras_sigmas(const ScheduleOptions& s, const torch::Device& device);

// The guidance interval of Kynkäänniemi et al. (2024): step i (sigma_i -> sigma_i+1) is guided when
// sigma_i lies in (lo, hi], or when i lies in the inclusive index range [first, last]. Everywhere by default.
struct GuidanceInterval {
  enum class Kind { Everywhere, Sigma, Steps } kind = Kind::Everywhere;
  double lo = 0, hi = 0;
  int first = 0, last = 0;

  static GuidanceInterval sigma(double lo, double hi);  // needs 0 <= lo < hi; throws FieldError
  static GuidanceInterval steps(int first, int last);    // needs 0 <= first <= last; throws FieldError

  void validate(int num_steps) const;  // steps outside 0..N-1 are refused
  bool contains(int step, float sigma) const;
  std::string describe() const;
};

}  // namespace autoguide
