// How the main net and its guides combine into one denoiser.
//   autoguidance paper Eq. 2:  D_w = D_guide + w (D_main - D_guide)
//   its App. B.2 (CFG + autoguidance):  D_w = D_m + (w_u - 1)(D_m - D_u) + (w_c - 1)(D_m - D_c),
//                                       w_u = (1 - alpha)(w - 1) + 1,  w_c = alpha (w - 1) + 1
#pragma once
#include <torch/types.h>

#include <cmath>
#include <string>
#include <vector>

#include "autoguide/model.hpp"

namespace autoguide {

enum class GuidanceMode { None, Autoguidance, CFG, Mixed };

std::string to_string(GuidanceMode m);

// Autoguidance when the guide is conditioned like the main net, CFG when the guide is unconditional and the
// main net conditional; None without a guide or at w == 1. Throws UsageError for pairs that fit neither.
GuidanceMode infer_mode(const ModelInfo& main, const ModelInfo* guide, double weight);

// Refuses non-finite or negative weights (FieldError naming `field`).
void validate_weight(double weight, const std::string& field = "guidance");

// One guiding net and the weight w_i of its term D_m + (w_i - 1)(D_m - D_i); `role` names it in errors.
struct GuideTerm {
  const Denoiser* net;
  double weight;
  std::string role = "guiding net";
};

// The sampler step an evaluation belongs to (index 0..count-1), named when an output is not finite.
struct StepIndex {
  int index = -1;  // -1: outside a sampling run
  int count = 0;
};

// The terms of a run: `guide` alone with weight w, or with `uncond` and alpha the App. B.2 mix.
// alpha is NaN when not mixing. Terms whose weight is 1 contribute nothing and are dropped, so their nets are
// never evaluated (w == 1; alpha == 0 drops the autoguidance guide, alpha == 1 the unconditional net).
std::vector<GuideTerm> guide_terms(const Denoiser* guide, const Denoiser* uncond, double weight, double alpha);

// Evaluates the combined denoiser; outside the guidance interval (guided == false) only the main net runs.
// Counts network evaluations per net for the summary. Every net's output, and their combination, is checked:
// NaN or Inf throws RuntimeFailure naming the net (role and file), the step and sigma, so that nothing made
// from it is written.
class GuidedDenoiser {
 public:
  GuidedDenoiser(const Denoiser& main, std::vector<GuideTerm> terms);

  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& sigma, const torch::Tensor& labels,
                           bool guided = true, StepIndex step = {});

  int64_t main_evals() const { return main_evals_; }
  // Evaluations of all guiding nets together.
  int64_t guide_evals() const { return guide_evals_; }

 private:
  // One net's output, checked.
  torch::Tensor eval(const Denoiser& net, const std::string& role, const torch::Tensor& x, const torch::Tensor& sigma,
                     const torch::Tensor& labels, StepIndex step) const;

  const Denoiser& main_;
  std::vector<GuideTerm> terms_;
  int64_t main_evals_ = 0, guide_evals_ = 0;
};

}  // namespace autoguide
