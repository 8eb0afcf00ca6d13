#include "autoguide/guidance.hpp"

#include <cstdio>

#include "autoguide/error.hpp"
#include "float32_range.hpp"

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

void validate_weight(double weight, const std::string& field) {
  if (!std::isfinite(weight) || weight < 0)
    throw FieldError(field, field + " must be a finite number >= 0 (got " + std::to_string(weight) + "); 1 means no guidance");
  check_float32(weight, field);
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
    if (guide) terms.push_back({guide, weight, "guiding net"});
  } else {
    terms.push_back({uncond, (1 - alpha) * (weight - 1) + 1, "unconditional net"});  // w_u, the CFG share
    terms.push_back({guide, alpha * (weight - 1) + 1, "guiding net"});              // w_c, the autoguidance share
  }
  std::vector<GuideTerm> active;
  for (const auto& t : terms)
    if (t.net != nullptr && t.weight != 1) active.push_back(t);
  return active;
}

namespace {

bool all_finite(const torch::Tensor& t) { return torch::isfinite(t).all().item<bool>(); }

// " at step 4/32 (sigma 12.4)": the step as the progress line counts it.
std::string where(const torch::Tensor& sigma, StepIndex step) {
  char text[96];
  const double s = sigma.numel() > 0 ? sigma.flatten()[0].item<double>() : std::nan("");
  if (step.index >= 0)
    std::snprintf(text, sizeof text, " at step %d/%d (sigma %g)", step.index + 1, step.count, s);
  else
    std::snprintf(text, sizeof text, " at sigma %g", s);
  return text;
}

}  // namespace

GuidedDenoiser::GuidedDenoiser(const Denoiser& main, std::vector<GuideTerm> terms)
    : main_(main), terms_(std::move(terms)) {}

torch::Tensor GuidedDenoiser::eval(const Denoiser& net, const std::string& role, const torch::Tensor& x,
                                   const torch::Tensor& sigma, const torch::Tensor& labels, StepIndex step) const {
  torch::Tensor out = net(x, sigma, labels);
  if (all_finite(out)) return out;
  if (!all_finite(x))  // the sampler state went out of range before this net saw it
    throw FieldFailure({"guidance", "S_noise"}, "the sampler state became NaN or Inf before the " + role + " ran" +
                                                    where(sigma, step) +
                                                    "; lower guidance or S_noise (nothing was written for this batch)");
  throw FieldFailure({"precision"}, "the " + role + " (" + net.path() + ") produced NaN or Inf" + where(sigma, step) +
                                        ": its weights are damaged or overflow in this precision; re-export it or "
                                        "set precision fp32 (nothing was written for this batch)");
}

torch::Tensor GuidedDenoiser::operator()(const torch::Tensor& x, const torch::Tensor& sigma,
                                         const torch::Tensor& labels, bool guided, StepIndex step) {
  auto d_main = eval(main_, "main net", x, sigma, labels, step);
  ++main_evals_;
  if (!guided || terms_.empty()) return d_main;
  torch::Tensor d;
  if (terms_.size() == 1) {
    // Eq. 2 with torch's lerp, which picks a + w(b-a) or b - (1-w)(b-a) by |w|, as the reference does.
    auto d_guide = eval(*terms_[0].net, terms_[0].role, x, sigma, labels, step);
    ++guide_evals_;
    d = d_guide.lerp(d_main, terms_[0].weight);
  } else {
    d = d_main.clone();
    for (const auto& t : terms_) {
      d += (t.weight - 1) * (d_main - eval(*t.net, t.role, x, sigma, labels, step));
      ++guide_evals_;
    }
  }
  if (!all_finite(d))
    throw FieldFailure({"guidance"}, "the guided output overflowed to NaN or Inf" + where(sigma, step) +
                                         " although every net's output was finite; lower guidance (nothing was "
                                         "written for this batch)");
  return d;
}

}  // namespace autoguide
