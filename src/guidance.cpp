#include "autoguide/guidance.hpp"

#include "autoguide/error.hpp"

namespace autoguide {

std::string to_string(GuidanceMode m) {
  switch (m) {
    case GuidanceMode::None: return "none";
    case GuidanceMode::Autoguidance: return "autoguidance";
    case GuidanceMode::CFG: return "cfg";
    case GuidanceMode::Mixed: return "cfg+autoguidance";
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

std::vector<GuideTerm> guide_terms(const Denoiser* guide, const Denoiser* uncond, double weight, double alpha) {
  std::vector<GuideTerm> terms;
  if (std::isnan(alpha)) {
    if (guide) terms.push_back({guide, weight});
  } else {
    terms.push_back({uncond, (1 - alpha) * (weight - 1) + 1});  // w_u, the CFG share
    terms.push_back({guide, alpha * (weight - 1) + 1});        // w_c, the autoguidance share
  }
  std::vector<GuideTerm> active;
  for (const auto& t : terms)
    if (t.net != nullptr && t.weight != 1) active.push_back(t);
  return active;
}

GuidedDenoiser::GuidedDenoiser(const Denoiser& main, std::vector<GuideTerm> terms)
    : main_(main), terms_(std::move(terms)) {}

torch::Tensor GuidedDenoiser::operator()(const torch::Tensor& x, const torch::Tensor& sigma,
                                         const torch::Tensor& labels, bool guided) {
  auto d_main = main_(x, sigma, labels);
  ++main_evals_;
  if (!guided || terms_.empty()) return d_main;
  if (terms_.size() == 1) {
    // Eq. 2 with torch's lerp, which picks a + w(b-a) or b - (1-w)(b-a) by |w|, as the reference does.
    auto d_guide = (*terms_[0].net)(x, sigma, labels);
    ++guide_evals_;
    return d_guide.lerp(d_main, terms_[0].weight);
  }
  auto d = d_main.clone();
  for (const auto& t : terms_) {
    d += (t.weight - 1) * (d_main - (*t.net)(x, sigma, labels));
    ++guide_evals_;
  }
  return d;
}

}  // namespace autoguide
