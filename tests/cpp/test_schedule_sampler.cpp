#include <gtest/gtest.h>

#include <cmath>

#include "option_values.hpp"
#include "autoguide/error.hpp"
#include "autoguide/sampler.hpp"
#include "autoguide/schedule.hpp"

using namespace autoguide;

TEST(Schedule, MatchesEdm2DefaultTable) {
  // sigma_i for N=32, rho=7 from the EDM2 notes (float64 values, 5 significant digits).
  const std::vector<std::pair<int, double>> table = {{0, 80.0},     {8, 16.591},    {16, 2.1739},  {17, 1.6086},
                                                     {22, 0.28304}, {24, 0.12257}, {30, 0.00427}, {31, 0.002}};
  auto t = karras_sigmas(ScheduleOptions{}, torch::kCPU);
  ASSERT_EQ(t.numel(), 33);
  EXPECT_EQ(t.scalar_type(), torch::kFloat32);
  for (auto [i, v] : table) EXPECT_NEAR(t[i].item<double>(), v, v * 1e-3) << "step " << i;
  EXPECT_EQ(t[32].item<float>(), 0.0f);
}

TEST(Schedule, FollowsEquationFiveInDouble) {
  ScheduleOptions s{10, 0.01, 5, 3};
  auto t = karras_sigmas(s, torch::kCPU);
  for (int i = 0; i < 10; ++i) {
    double e = std::pow(std::pow(5.0, 1 / 3.0) + i / 9.0 * (std::pow(0.01, 1 / 3.0) - std::pow(5.0, 1 / 3.0)), 3.0);
    EXPECT_NEAR(t[i].item<double>(), e, e * 1e-5);
  }
}

TEST(Schedule, RefusesImpossibleOptions) {
  EXPECT_THROW(validate(ScheduleOptions{1, 0.002, 80, 7}), UsageError);
  EXPECT_THROW(validate(ScheduleOptions{32, 0, 80, 7}), UsageError);
  EXPECT_THROW(validate(ScheduleOptions{32, 1, 0.5, 7}), UsageError);
  EXPECT_THROW(validate(ScheduleOptions{32, 0.002, 80, -1}), UsageError);
}

// With D(x; sigma) = c x the probability-flow ODE dx/dsigma = (x - D)/sigma = (1-c) x / sigma has the exact
// solution x(sigma) = x0 (sigma/sigma0)^(1-c); the final Euler step to sigma = 0 then returns D = c x(sigma_min).
// Heun is 2nd order: 4x the steps must cut the error about 16x (Euler would give 4x).
TEST(Sampler, HeunIsSecondOrderOnAnalyticOde) {
  const double c = 0.3;
  const double exact = c * 80 * std::pow(0.002 / 80, 1 - c);
  auto relative_error = [&](int steps, int* calls) {
    SamplerOptions o;
    o.schedule = ScheduleOptions{steps, 0.002, 80, 7};
    auto denoise = [&](const torch::Tensor& x, const torch::Tensor&, int) {
      ++*calls;
      return x * c;
    };
    auto noise = torch::ones({1, 1, 1, 1}, torch::kFloat64);
    return std::abs(edm_sample(denoise, noise, o, nullptr).item<double>() / exact - 1);
  };
  int calls64 = 0, calls256 = 0, calls1024 = 0;
  relative_error(64, &calls64);
  const double e256 = relative_error(256, &calls256), e1024 = relative_error(1024, &calls1024);
  EXPECT_EQ(calls64, 2 * 64 - 1);  // NFE = 2N - 1
  EXPECT_LT(e1024, 5e-4);
  EXPECT_GT(e256 / e1024, 10);
  EXPECT_LT(e256 / e1024, 24);
}

TEST(Sampler, ChurnDrawsNoiseOnlyInsideItsWindow) {
  SamplerOptions o;
  o.schedule = ScheduleOptions{8, 0.002, 80, 7};
  o.S_churn = 40;
  o.S_min = 0.05;
  o.S_max = 10;
  auto t = karras_sigmas(o.schedule, torch::kCPU);
  int expected = 0;
  for (int i = 0; i < 8; ++i) {
    float v = t[i].item<float>();
    expected += (v >= 0.05f && v <= 10.f);
  }
  int draws = 0;
  auto denoise = [](const torch::Tensor& x, const torch::Tensor&, int) { return x * 0; };
  auto noise_fn = [&](const torch::Tensor& x) {
    ++draws;
    return torch::zeros_like(x);
  };
  edm_sample(denoise, torch::ones({2, 1, 2, 2}), o, noise_fn);
  EXPECT_EQ(draws, expected);
  EXPECT_GT(draws, 0);
}

TEST(GuidanceInterval, PaperXxlSettingSelectsSteps17To22) {
  auto t = karras_sigmas(ScheduleOptions{}, torch::kCPU);
  auto g = autoguide::cli::parse_interval_sigma("0.19,1.61");
  std::vector<int> on;
  for (int i = 0; i < 32; ++i)
    if (g.contains(i, t[i].item<float>())) on.push_back(i);
  EXPECT_EQ(on, (std::vector<int>{17, 18, 19, 20, 21, 22}));
  auto s = autoguide::cli::parse_interval_steps("17,22");
  for (int i = 0; i < 32; ++i) EXPECT_EQ(s.contains(i, t[i].item<float>()), g.contains(i, t[i].item<float>()));
}

TEST(GuidanceInterval, IsOpenBelowAndClosedAbove) {
  auto t = karras_sigmas(ScheduleOptions{}, torch::kCPU);
  const float s20 = t[20].item<float>();
  GuidanceInterval g;
  g.kind = GuidanceInterval::Kind::Sigma;
  g.lo = s20;  // exactly on the lower bound: excluded
  g.hi = t[18].item<float>();  // exactly on the upper bound: included
  EXPECT_FALSE(g.contains(20, s20));
  EXPECT_TRUE(g.contains(19, t[19].item<float>()));
  EXPECT_TRUE(g.contains(18, t[18].item<float>()));
  EXPECT_FALSE(g.contains(17, t[17].item<float>()));
}

TEST(GuidanceInterval, RefusesBadBounds) {
  EXPECT_THROW(autoguide::cli::parse_interval_sigma("2,1"), UsageError);
  EXPECT_THROW(autoguide::cli::parse_interval_sigma("1,1"), UsageError);
  EXPECT_THROW(autoguide::cli::parse_interval_sigma("1"), UsageError);
  EXPECT_THROW(autoguide::cli::parse_interval_sigma("a,b"), UsageError);
  EXPECT_THROW(autoguide::cli::parse_interval_steps("5,3"), UsageError);
  EXPECT_THROW(autoguide::cli::parse_interval_steps("-1,3"), UsageError);
  EXPECT_THROW(autoguide::cli::parse_interval_steps("20,32").validate(32), UsageError);
  EXPECT_NO_THROW(autoguide::cli::parse_interval_steps("20,31").validate(32));
}

TEST(Sampler, EulerAndDpmSolverUseOneEvaluationPerStep) {
  for (auto kind : {SamplerKind::Euler, SamplerKind::DpmPP2M}) {
    SamplerOptions o;
    o.kind = kind;
    o.schedule = ScheduleOptions{10, 0.002, 80, 7};
    std::vector<int> steps;
    auto denoise = [&](const torch::Tensor& x, const torch::Tensor&, int step) {
      steps.push_back(step);
      return x * 0.5;
    };
    edm_sample(denoise, torch::ones({1, 1, 1, 1}), o, nullptr);
    EXPECT_EQ(steps, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    EXPECT_EQ(evaluations_per_sample(o), 10);
  }
  EXPECT_THROW(autoguide::cli::parse_sampler("ddim"), UsageError);
}
