// How the main net and its guide combine into one denoiser (autoguidance paper, Eq. 2).
#pragma once
#include <torch/torch.h>

#include <string>

#include "autoguide/model.hpp"

namespace autoguide {

enum class GuidanceMode { None, Autoguidance, CFG };

std::string to_string(GuidanceMode m);

// Autoguidance when the guide is conditioned like the main net, CFG when the guide is unconditional and the
// main net conditional; None without a guide or at w == 1. Throws UsageError for pairs that fit neither.
GuidanceMode infer_mode(const ModelInfo& main, const ModelInfo* guide, double weight);

// Refuses non-finite or negative weights with a message naming the option.
void validate_weight(double weight, const std::string& option);

// D_w(x; sigma, c) = D_guide + w (D_main - D_guide), the guide called with the same class labels. The guide is
// never evaluated at w == 1. Counts network evaluations for the summary.
class GuidedDenoiser {
 public:
  GuidedDenoiser(const Denoiser& main, const Denoiser* guide, double weight);

  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& sigma, const torch::Tensor& labels);

  int64_t main_evals() const { return main_evals_; }
  int64_t guide_evals() const { return guide_evals_; }

 private:
  const Denoiser& main_;
  const Denoiser* guide_;
  double weight_;
  int64_t main_evals_ = 0, guide_evals_ = 0;
};

}  // namespace autoguide
