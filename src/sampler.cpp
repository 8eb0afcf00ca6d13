#include "autoguide/sampler.hpp"

#include <cmath>

#include "autoguide/error.hpp"
#include "float32_range.hpp"

namespace autoguide {

std::string to_string(SamplerKind k) {
  switch (k) {
    case SamplerKind::Heun: return "heun";
    case SamplerKind::Euler: return "euler";
    case SamplerKind::DpmPP2M: return "dpmpp2m";
  }
  return "?";
}

void validate(const SamplerOptions& o) {
  validate(o.schedule);
  if (!(std::isfinite(o.S_churn) && o.S_churn >= 0)) throw FieldError("S_churn", "S_churn must be a finite number >= 0");
  if (!(o.S_min >= 0)) throw FieldError("S_min", "S_min must be >= 0");
  if (!(o.S_max >= 0)) throw FieldError("S_max", "S_max must be >= 0");
  if (!std::isfinite(o.S_noise)) throw FieldError("S_noise", "S_noise must be a finite number");
  check_float32(o.S_churn, "S_churn");
  check_float32(o.S_noise, "S_noise");
  // S_min and S_max are compared in float32 (as the reference does); infinity is a valid "no bound".
  if (!std::isinf(o.S_min)) check_float32(o.S_min, "S_min");
  if (!std::isinf(o.S_max)) check_float32(o.S_max, "S_max");
  if (o.S_churn > 0 && o.kind == SamplerKind::DpmPP2M)
    throw FieldError({"S_churn", "sampler"}, "S_churn is part of EDM's heun/euler sampling; set it to 0 or use sampler heun");
}

int evaluations_per_sample(const SamplerOptions& o) {
  const int n = o.schedule.num_steps;
  return o.kind == SamplerKind::Heun ? 2 * n - 1 : n;
}

namespace {

// Churn: raise the noise level temporarily to t_hat = (1 + gamma) t_cur (EDM Algorithm 2, lines 4-6).
void add_churn(const SamplerOptions& opts, float t_cur_value, const torch::Tensor& t_cur, torch::Tensor& t_hat,
               torch::Tensor& x_hat, const NoiseFn& randn_like) {
  // The reference compares a float32 tensor with Python floats, i.e. in float32.
  if (!(opts.S_churn > 0 && static_cast<float>(opts.S_min) <= t_cur_value &&
        t_cur_value <= static_cast<float>(opts.S_max)))
    return;
  const double gamma = std::min(opts.S_churn / opts.schedule.num_steps, std::sqrt(2.0) - 1);
  const torch::Tensor x_cur = x_hat;
  t_hat = t_cur + gamma * t_cur;
  x_hat = x_cur + (t_hat.pow(2) - t_cur.pow(2)).sqrt() * opts.S_noise * randn_like(x_cur);
}

}  // namespace

torch::Tensor edm_sample(const DenoiseFn& denoise, const torch::Tensor& noise, const SamplerOptions& opts,
                         const NoiseFn& randn_like, const StepObserver& observer) {
  const int n = opts.schedule.num_steps;
  const auto t_steps = karras_sigmas(opts.schedule, noise.device());
  // Host copies of the sigmas drive the branches; one copy avoids a device sync per step.
  const auto t_host = t_steps.to(torch::kCPU);
  const float* sig = t_host.data_ptr<float>();

  torch::Tensor x_next = noise.to(torch::kFloat32) * t_steps[0];
  torch::Tensor old_denoised;
  for (int i = 0; i < n; ++i) {
    const torch::Tensor x_cur = x_next;
    const torch::Tensor t_cur = t_steps[i], t_next = t_steps[i + 1];
    torch::Tensor t_hat = t_cur, x_hat = x_cur;

    if (opts.kind == SamplerKind::DpmPP2M) {
      // Data-prediction multistep solver in lambda = -log(sigma), h = lambda_next - lambda_cur.
      const auto denoised = denoise(x_cur, t_cur, i);
      if (sig[i + 1] == 0) {
        x_next = denoised;  // exp(-h) -> 0: the last step lands on D
      } else {
        const double h = std::log(double(sig[i])) - std::log(double(sig[i + 1]));
        torch::Tensor d = denoised;
        if (old_denoised.defined()) {
          const double r = (std::log(double(sig[i - 1])) - std::log(double(sig[i]))) / h;
          d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised;
        }
        x_next = (double(sig[i + 1]) / sig[i]) * x_cur - std::expm1(-h) * d;
      }
      old_denoised = denoised;
    } else {
      add_churn(opts, sig[i], t_cur, t_hat, x_hat, randn_like);
      // Euler step (EDM Algorithm 2, lines 7-8).
      const auto d_cur = (x_hat - denoise(x_hat, t_hat, i)) / t_hat;
      x_next = x_hat + (t_next - t_hat) * d_cur;
      // Heun's 2nd-order correction, skipped on the last step where t_next = 0 (lines 9-11).
      if (opts.kind == SamplerKind::Heun && i < n - 1) {
        const auto d_prime = (x_next - denoise(x_next, t_next, i)) / t_next;
        x_next = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime);
      }
    }
    if (observer) observer(i, n);
  }
  return x_next;
}

}  // namespace autoguide
