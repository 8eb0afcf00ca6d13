#include "autoguide/schedule.hpp"

#include <cmath>

#include "autoguide/error.hpp"

namespace autoguide {

void validate(const ScheduleOptions& s) {
  if (s.num_steps < 2) throw UsageError("--steps must be at least 2 (got " + std::to_string(s.num_steps) + ")");
  if (!(std::isfinite(s.sigma_min) && s.sigma_min > 0)) throw UsageError("--sigma_min must be a positive number");
  if (!(std::isfinite(s.sigma_max) && s.sigma_max > s.sigma_min))
    throw UsageError("--sigma_max must be a finite number above --sigma_min");
  if (!(std::isfinite(s.rho) && s.rho > 0)) throw UsageError("--rho must be a positive number");
}

torch::Tensor karras_sigmas(const ScheduleOptions& s, const torch::Device& device) {
  const double max_inv_rho = std::pow(s.sigma_max, 1.0 / s.rho);
  const double min_inv_rho = std::pow(s.sigma_min, 1.0 / s.rho);
  auto i = torch::arange(s.num_steps, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  // Eq. 5: sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
  auto t = (i / (s.num_steps - 1) * (min_inv_rho - max_inv_rho) + max_inv_rho).pow(s.rho);
  return torch::cat({t, torch::zeros_like(t.slice(0, 0, 1))});
}

}  // namespace autoguide
