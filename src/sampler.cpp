#include "autoguide/sampler.hpp"

#include <cmath>

#include "autoguide/error.hpp"

namespace autoguide {

void validate(const SamplerOptions& o) {
  validate(o.schedule);
  if (!(std::isfinite(o.S_churn) && o.S_churn >= 0)) throw UsageError("--S_churn must be a finite number >= 0");
  if (!(o.S_min >= 0)) throw UsageError("--S_min must be >= 0");
  if (!(o.S_max >= 0)) throw UsageError("--S_max must be >= 0");
  if (!std::isfinite(o.S_noise)) throw UsageError("--S_noise must be a finite number");
}

torch::Tensor edm_sample(const DenoiseFn& denoise, const torch::Tensor& noise, const SamplerOptions& opts,
                         const NoiseFn& randn_like, const StepObserver& observer) {
  const int n = opts.schedule.num_steps;
  const auto t_steps = karras_sigmas(opts.schedule, noise.device());
  // The comparisons with S_min/S_max and t_cur happen on the host; one copy avoids a sync per step.
  const auto t_host = t_steps.to(torch::kCPU);
  const double gamma_max = std::sqrt(2.0) - 1;

  torch::Tensor x_next = noise.to(torch::kFloat32) * t_steps[0];
  for (int i = 0; i < n; ++i) {
    const torch::Tensor x_cur = x_next;
    const torch::Tensor t_cur = t_steps[i], t_next = t_steps[i + 1];
    const float t_cur_value = t_host[i].item<float>();

    // Churn: raise the noise level temporarily to t_hat = (1 + gamma) t_cur (Algorithm 2, lines 4-6).
    torch::Tensor t_hat = t_cur, x_hat = x_cur;
    // The reference compares a float32 tensor with Python floats, i.e. in float32.
    if (opts.S_churn > 0 && static_cast<float>(opts.S_min) <= t_cur_value && t_cur_value <= static_cast<float>(opts.S_max)) {
      const double gamma = std::min(opts.S_churn / n, gamma_max);
      t_hat = t_cur + gamma * t_cur;
      x_hat = x_cur + (t_hat.pow(2) - t_cur.pow(2)).sqrt() * opts.S_noise * randn_like(x_cur);
    }

    // Euler step (Algorithm 2, lines 7-8).
    const auto d_cur = (x_hat - denoise(x_hat, t_hat)) / t_hat;
    x_next = x_hat + (t_next - t_hat) * d_cur;

    // 2nd-order correction, skipped on the last step where t_next = 0 (lines 9-11).
    if (i < n - 1) {
      const auto d_prime = (x_next - denoise(x_next, t_next)) / t_next;
      x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime);
    }
    if (observer) observer(i, n);
  }
  return x_next;
}

}  // namespace autoguide
