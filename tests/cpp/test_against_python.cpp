// The C++ loader, RNG and schedule against values our Python code (and PyTorch's Python API) computed.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <cstdlib>

#include "autoguide/error.hpp"
#include "fixtures.hpp"
#include "autoguide/guidance.hpp"
#include "autoguide/model.hpp"
#include "npy.hpp"
#include "autoguide/schedule.hpp"
#include "autoguide/seeds.hpp"

using namespace autoguide;


TEST(Denoiser, ReproducesPythonNetworkAtAllNoiseLevels) {
  auto x = read_npy(fixture("x.npy"));
  auto labels = read_npy(fixture("labels.npy"));
  for (const std::string role : {"main", "uncond"}) {
    auto net = Denoiser::load(fixture(role + ".pt"), torch::kCPU);
    EXPECT_EQ(net.info().img_resolution, 8);
    EXPECT_EQ(net.info().label_dim, role == "main" ? 10 : 0);
    EXPECT_EQ(net.loaded_param_count(), net.info().param_count);
    for (const std::string sigma : {"0.002", "1", "80"}) {
      auto s = torch::tensor(std::stof(sigma));
      auto expected = read_npy(fixture(role + "_sigma" + sigma + ".npy"));
      auto out = net(x, s, net.info().conditional() ? labels : torch::Tensor());
      const double err = max_relative_error(out, expected);
      std::cout << "[ measured ] " << role << " sigma " << sigma << ": max relative error " << err << "\n";
      EXPECT_LT(err, 1e-5) << role << " sigma " << sigma;
      if (net.info().conditional()) {  // labels absent: EDM2 feeds a zero label vector
        auto none = net(x, s, torch::Tensor());
        auto expected_none = read_npy(fixture(role + "_nolabels_sigma" + sigma + ".npy"));
        EXPECT_LT(max_relative_error(none, expected_none), 1e-5) << role << " no labels, sigma " << sigma;
        EXPECT_GT((none - out).abs().max().item<double>(), 1e-4);  // the labels do matter
      }
    }
  }
}

TEST(Denoiser, RefusesBadFiles) {
  EXPECT_THROW(Denoiser::load(fixture("does-not-exist.pt"), torch::kCPU), UsageError);
  EXPECT_THROW(Denoiser::load(fixture("x.npy"), torch::kCPU), UsageError);
}

TEST(Guidance, ModeFollowsTheGuidesLabels) {
  auto main = Denoiser::load(fixture("main.pt"), torch::kCPU);
  auto guide = Denoiser::load(fixture("guide.pt"), torch::kCPU);
  auto uncond = Denoiser::load(fixture("uncond.pt"), torch::kCPU);
  EXPECT_EQ(infer_mode(main.info(), &guide.info(), 2.0), GuidanceMode::Autoguidance);
  EXPECT_EQ(infer_mode(main.info(), &uncond.info(), 2.0), GuidanceMode::CFG);
  EXPECT_EQ(infer_mode(main.info(), &guide.info(), 1.0), GuidanceMode::None);
  EXPECT_EQ(infer_mode(uncond.info(), &uncond.info(), 2.0), GuidanceMode::Autoguidance);
  EXPECT_THROW(infer_mode(uncond.info(), &guide.info(), 2.0), UsageError);
}

TEST(Guidance, IsLerpFromGuideToMainAndSkipsGuideAtWeightOne) {
  auto main = Denoiser::load(fixture("main.pt"), torch::kCPU);
  auto guide = Denoiser::load(fixture("guide.pt"), torch::kCPU);
  auto x = read_npy(fixture("x.npy"));
  auto labels = read_npy(fixture("labels.npy"));
  auto s = torch::tensor(1.5f);
  auto dm = main(x, s, labels), dg = guide(x, s, labels);
  GuidedDenoiser g(main, guide_terms(&guide, nullptr, 2.1, std::nan("")));
  auto d = g(x, s, labels);
  EXPECT_LT((d - (dg + 2.1 * (dm - dg))).abs().max().item<double>(), 1e-5);
  EXPECT_EQ(g.guide_evals(), 1);
  GuidedDenoiser plain(main, guide_terms(&guide, nullptr, 1.0, std::nan("")));
  EXPECT_TRUE(torch::equal(plain(x, s, labels), dm));
  EXPECT_EQ(plain.guide_evals(), 0);
}

TEST(SeedGenerators, EqualPytorchPythonGeneratorsBitForBit) {
  auto seeds_t = read_npy(fixture("rng_seeds.npy"));
  std::vector<int64_t> seeds(seeds_t.data_ptr<int64_t>(), seeds_t.data_ptr<int64_t>() + seeds_t.numel());
  SeedGenerators gens(seeds, torch::kCPU);
  auto drawn = draw_noise_and_labels(gens, 3, 8, 10, -1);
  EXPECT_TRUE(torch::equal(drawn.noise, read_npy(fixture("rng_noise.npy"))));
  EXPECT_TRUE(torch::equal(drawn.classes, read_npy(fixture("rng_classes.npy"))));
  EXPECT_TRUE(torch::equal(gens.randn_like(drawn.noise), read_npy(fixture("rng_churn.npy"))));
}

TEST(Schedule, EqualsReferenceFloat32ArithmeticBitForBit) {
  EXPECT_TRUE(torch::equal(karras_sigmas(ScheduleOptions{32, 0.002, 80, 7}, torch::kCPU),
                           read_npy(fixture("schedule_32.npy"))));
  EXPECT_TRUE(torch::equal(karras_sigmas(ScheduleOptions{13, 0.01, 5, 3}, torch::kCPU),
                           read_npy(fixture("schedule_13.npy"))));
}

TEST(Guidance, MixWeightsFollowAppendixB2AndDropUnitTerms) {
  auto main = Denoiser::load(fixture("main.pt"), torch::kCPU);
  auto guide = Denoiser::load(fixture("guide.pt"), torch::kCPU);
  auto uncond = Denoiser::load(fixture("uncond.pt"), torch::kCPU);
  auto half = guide_terms(&guide, &uncond, 3.0, 0.5);  // w_u = w_c = 0.5 * 2 + 1 = 2
  ASSERT_EQ(half.size(), 2u);
  EXPECT_EQ(half[0].net, &uncond);
  EXPECT_DOUBLE_EQ(half[0].weight, 2.0);
  EXPECT_DOUBLE_EQ(half[1].weight, 2.0);
  auto quarter = guide_terms(&guide, &uncond, 3.0, 0.25);  // w_u = 0.75*2+1 = 2.5, w_c = 0.25*2+1 = 1.5
  EXPECT_DOUBLE_EQ(quarter[0].weight, 2.5);
  EXPECT_DOUBLE_EQ(quarter[1].weight, 1.5);
  auto ag = guide_terms(&guide, &uncond, 3.0, 1.0);  // alpha = 1: the unconditional net is never run
  ASSERT_EQ(ag.size(), 1u);
  EXPECT_EQ(ag[0].net, &guide);
  EXPECT_DOUBLE_EQ(ag[0].weight, 3.0);
  auto cfg = guide_terms(&guide, &uncond, 3.0, 0.0);
  ASSERT_EQ(cfg.size(), 1u);
  EXPECT_EQ(cfg[0].net, &uncond);
  // The two-term sum against the formula.
  auto x = read_npy(fixture("x.npy"));
  auto labels = read_npy(fixture("labels.npy"));
  auto s = torch::tensor(0.7f);
  auto dm = main(x, s, labels), dg = guide(x, s, labels), du = uncond(x, s, labels);
  GuidedDenoiser mix(main, quarter);
  auto d = mix(x, s, labels);
  EXPECT_LT((d - (dm + 1.5 * (dm - du) + 0.5 * (dm - dg))).abs().max().item<double>(), 1e-5);
  EXPECT_EQ(mix.guide_evals(), 2);
  EXPECT_TRUE(torch::equal(mix(x, s, labels, /*guided=*/false), dm));
  EXPECT_EQ(mix.guide_evals(), 2);  // outside the interval no guide runs
}
