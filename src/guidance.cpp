#include "autoguide/guidance.hpp"

#include <cmath>

#include "autoguide/error.hpp"

namespace autoguide {

std::string to_string(GuidanceMode m) {
  switch (m) {
    case GuidanceMode::None: return "none";
    case GuidanceMode::Autoguidance: return "autoguidance";
    case GuidanceMode::CFG: return "cfg";
  }
  return "?";
}

void validate_weight(double weight, const std::string& option) {
  if (!std::isfinite(weight) || weight < 0)
    throw UsageError(option + " must be a finite number >= 0 (got " + std::to_string(weight) + "); 1 means no guidance");
}

GuidanceMode infer_mode(const ModelInfo& main, const ModelInfo* guide, double weight) {
  if (weight == 1 || guide == nullptr) return GuidanceMode::None;
  if (guide->label_dim == main.label_dim) return GuidanceMode::Autoguidance;
  if (guide->label_dim == 0 && main.label_dim > 0) return GuidanceMode::CFG;
  throw UsageError("the guide has label_dim " + std::to_string(guide->label_dim) + " but the main net has " +
                   std::to_string(main.label_dim) +
                   "; use a guide with the same classes (autoguidance) or an unconditional one (CFG)");
}

GuidedDenoiser::GuidedDenoiser(const Denoiser& main, const Denoiser* guide, double weight)
    : main_(main), guide_(guide), weight_(weight) {}

torch::Tensor GuidedDenoiser::operator()(const torch::Tensor& x, const torch::Tensor& sigma,
                                         const torch::Tensor& labels) {
  auto d_main = main_(x, sigma, labels);
  ++main_evals_;
  if (weight_ == 1 || guide_ == nullptr) return d_main;
  auto d_guide = (*guide_)(x, sigma, labels);
  ++guide_evals_;
  // Eq. 2: torch's lerp picks between a + w(b-a) and b - (1-w)(b-a) by |w|; using it keeps bit parity.
  return d_guide.lerp(d_main, weight_);
}

}  // namespace autoguide
