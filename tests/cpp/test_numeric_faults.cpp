// Numerical faults: NaN or Inf from a net stops the run before anything made from it reaches a sink, and
// values beyond float32's range are refused as usage errors before sampling.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdio>

#include "autoguide/error.hpp"
#include "autoguide/generate.hpp"
#include "npy.hpp"
#include "fixtures.hpp"

using namespace autoguide;

namespace {

struct Outcome {
  std::string error;             // empty when the run finished
  std::vector<int64_t> written;  // seeds the sink received
};

Outcome run_generate(const Nets& nets, const GenerateRequest& req) {
  Outcome out;
  try {
    generate(nets, req, [&](const BatchResult& r) {
      out.written.insert(out.written.end(), r.seeds.begin(), r.seeds.end());
    });
  } catch (const RuntimeFailure& e) {
    out.error = e.what();
  }
  return out;
}

std::string g_format(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

GenerateRequest request(std::vector<int64_t> seeds, int batch, int steps, double guidance) {
  GenerateRequest req;
  req.seeds = std::move(seeds);
  req.max_batch = batch;
  req.sampler.schedule.num_steps = steps;
  req.guidance = guidance;
  return req;
}

}  // namespace

TEST(NumericFaults, NanGuideStopsAtTheFirstStepAndNothingReachesTheSink) {
  auto main = Denoiser::load(fixture("main.pt"), torch::kCPU);
  auto guide = Denoiser::load(fixture("guide_nan.pt"), torch::kCPU);
  const Outcome out = run_generate({&main, &guide, nullptr}, request({0, 1, 2, 3}, 2, 4, 2.0));
  EXPECT_EQ(out.error, "the guiding net (" + fixture("guide_nan.pt") +
                           ") produced NaN or Inf at step 1/4 (sigma 80): its weights are damaged or overflow in this "
                           "precision; re-export it or set precision fp32 (nothing was written for this batch)");
  EXPECT_TRUE(out.written.empty());
}

TEST(NumericFaults, NetBreakingMidRunKeepsEarlierBatchesAndNamesStepAndSigma) {
  // faulty.pt returns NaN for the class of seed 2 once sigma < 1 (tests/python/model_fixtures.py).
  auto faulty = Denoiser::load(fixture("faulty.pt"), torch::kCPU);
  const Outcome out = run_generate({&faulty, nullptr, nullptr}, request({0, 1, 2, 3}, 1, 32, 1.0));
  // Heun first evaluates sigma_j as the correction of step j-1, i.e. on step j counted from 1.
  const auto sigmas = read_npy(fixture("schedule_32.npy"));
  int j = 0;
  while (sigmas[j].item<float>() >= 1.0f) ++j;
  EXPECT_EQ(out.error.substr(0, out.error.find(':')),
            "the main net (" + fixture("faulty.pt") + ") produced NaN or Inf at step " + std::to_string(j) +
                "/32 (sigma " + g_format(sigmas[j].item<float>()) + ")");
  EXPECT_EQ(out.written, (std::vector<int64_t>{0, 1}));
}

TEST(NumericFaults, MixTermsAreNamedByRole) {
  auto main = Denoiser::load(fixture("main.pt"), torch::kCPU);
  auto guide = Denoiser::load(fixture("guide.pt"), torch::kCPU);
  auto broken = Denoiser::load(fixture("guide_nan.pt"), torch::kCPU);
  GuidedDenoiser mix(main, guide_terms(&guide, &broken, 3.0, 0.5));
  auto x = read_npy(fixture("x.npy"));
  auto labels = read_npy(fixture("labels.npy"));
  try {
    mix(x, torch::tensor(0.7f), labels, true, {2, 8});
    FAIL() << "NaN from the unconditional net went through";
  } catch (const RuntimeFailure& e) {
    EXPECT_EQ(std::string(e.what()).rfind("the unconditional net (" + fixture("guide_nan.pt") +
                                              ") produced NaN or Inf at step 3/8 (sigma 0.7)",
                                          0),
              0u)
        << e.what();
  }
}

TEST(NumericFaults, GuidanceThatOverflowsIsNamedAsSuch) {
  auto main = Denoiser::load(fixture("main.pt"), torch::kCPU);
  auto guide = Denoiser::load(fixture("guide.pt"), torch::kCPU);
  auto x = read_npy(fixture("x.npy"));
  auto labels = read_npy(fixture("labels.npy"));
  const auto s = torch::tensor(1.0f);
  // With |D_main - D_guide| > 1 somewhere, the largest float32 weight takes D past float32's range.
  ASSERT_GT((main(x, s, labels) - guide(x, s, labels)).abs().max().item<float>(), 1.0f);
  GuidedDenoiser g(main, guide_terms(&guide, nullptr, FLT_MAX, std::nan("")));
  try {
    g(x, s, labels, true, {0, 4});
    FAIL() << "an overflowing guidance weight went through";
  } catch (const RuntimeFailure& e) {
    EXPECT_EQ(std::string(e.what()).rfind("the guided output overflowed to NaN or Inf at step 1/4 (sigma 1)", 0), 0u)
        << e.what();
  }
}

TEST(Float32Range, WeightsUpToFloatMaxPassAndBeyondAreUsageErrors) {
  EXPECT_NO_THROW(validate_weight(FLT_MAX));
  EXPECT_THROW(validate_weight(std::nextafter(double(FLT_MAX), 1e300)), UsageError);
  try {
    validate_weight(1e308);
    FAIL();
  } catch (const FieldError& e) {  // the library names its field; the CLI says --guidance
    EXPECT_EQ(e.fields, std::vector<std::string>{"guidance"});
    EXPECT_EQ(std::string(e.what()), "guidance 1e+308 is outside float32's range (magnitude at most 3.4e38), in "
                                     "which sampling computes; give a smaller value");
  }
}

TEST(Float32Range, SamplerOptionsBeyondFloat32AreUsageErrors) {
  auto refused = [](void (*edit)(SamplerOptions&)) {
    SamplerOptions o;
    edit(o);
    try {
      validate(o);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(refused([](SamplerOptions&) {}), "");
  EXPECT_EQ(refused([](SamplerOptions& o) { o.S_max = INFINITY; }), "");  // EDM2's default: no upper bound
  EXPECT_EQ(refused([](SamplerOptions& o) { o.S_min = INFINITY; }), "");
  EXPECT_EQ(refused([](SamplerOptions& o) { o.schedule.sigma_max = 1e38; }), "");
  // FLT_MAX itself fits, but its schedule rounds past float32: (FLT_MAX^(1/7))^7 > FLT_MAX.
  EXPECT_NE(refused([](SamplerOptions& o) { o.schedule.sigma_max = FLT_MAX; }), "");
  EXPECT_EQ(refused([](SamplerOptions& o) { o.S_churn = 1e39; }).rfind("S_churn 1e+39 is outside", 0), 0u);
  EXPECT_EQ(refused([](SamplerOptions& o) { o.S_noise = -1e39; }).rfind("S_noise -1e+39 is outside", 0), 0u);
  EXPECT_EQ(refused([](SamplerOptions& o) { o.S_min = 1e39; }).rfind("S_min 1e+39 is outside", 0), 0u);
  EXPECT_EQ(refused([](SamplerOptions& o) { o.S_max = 1e308; }).rfind("S_max 1e+308 is outside", 0), 0u);
  EXPECT_EQ(refused([](SamplerOptions& o) { o.schedule.sigma_max = 1e308; }).rfind("sigma_max 1e+308 is outside", 0),
            0u);
  EXPECT_EQ(refused([](SamplerOptions& o) { o.schedule.rho = 1e39; }).rfind("rho 1e+39 is outside", 0), 0u);
  EXPECT_EQ(refused([](SamplerOptions& o) { o.schedule.sigma_min = 1e-50; }),
            "sigma_min 1e-50 rounds to 0 in float32, in which sampling computes; give a larger value");
  // Each value fits, the schedule does not: 80^(1/0.01) = 80^100 overflows.
  EXPECT_EQ(refused([](SamplerOptions& o) { o.schedule.rho = 0.01; }),
            "sigma_min 0.002, sigma_max 80 and rho 0.01 give noise levels outside float32's range, in which "
            "sampling computes; use a larger rho or a narrower sigma range");
}
