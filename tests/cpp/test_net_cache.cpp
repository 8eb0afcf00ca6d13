// Post-hoc EMA lengths of a snapshot set (the committed demo guide's, models/demo/guide-set.pt) as commands use
// them: streamed sets build the same nets as resident ones, bit for bit; NetCache describes a length before
// building it, builds it in place, releases it and builds it again, references staying valid throughout.
#include <gtest/gtest.h>

#include "autoguide/error.hpp"
#include "autoguide/phema.hpp"
#include "nets.hpp"

namespace {

using namespace autoguide;

const std::string kSet = std::string(AUTOGUIDE_SOURCE_DIR) + "/models/demo/guide-set.pt";

// D(x; sigma, c) of a net on a fixed input: equal outputs on the CPU mean equal weights.
torch::Tensor probe(const Denoiser& net) {
  const ModelInfo& info = net.info();
  torch::manual_seed(7);
  const torch::Tensor x = torch::randn({3, info.img_channels, info.img_resolution, info.img_resolution});
  torch::Tensor labels;
  if (info.label_dim > 0) labels = torch::eye(info.label_dim).narrow(0, 0, 3);
  return net(x, torch::tensor({0.5, 2.0, 20.0}), labels);
}

TEST(SnapshotSetStreaming, BuildsTheResidentNetsBitForBitInOnePass) {
  const SnapshotSet resident = SnapshotSet::load(kSet, torch::kCPU);
  const SnapshotSet streamed = SnapshotSet::load(kSet, torch::kCPU, 1);  // the file is far above 1 byte
  ASSERT_FALSE(resident.streamed());
  ASSERT_TRUE(streamed.streamed());
  std::vector<PosthocEma> plans;
  for (const EmaRequest& r : {EmaRequest{0.05, std::nullopt, false}, EmaRequest{0.12, std::nullopt, true},
                              EmaRequest{0.2, 8, false}})
    plans.push_back(resident.plan(r, "ema"));
  const std::vector<Denoiser> together = streamed.build_all(plans);
  ASSERT_EQ(together.size(), plans.size());
  for (size_t k = 0; k < plans.size(); ++k) {
    const torch::Tensor want = probe(resident.build(plans[k]));
    EXPECT_TRUE(torch::equal(probe(together[k]), want)) << k;
    EXPECT_TRUE(torch::equal(probe(streamed.build(plans[k])), want)) << k;  // and read again, one at a time
  }
  // Distinct lengths are distinct nets (the comparison above is not vacuous).
  EXPECT_FALSE(torch::equal(probe(together[0]), probe(together[1])));
}

TEST(NetCache, LengthsAreDescribedBuiltInPlaceReleasedAndRebuilt) {
  cli::SamplingSetup setup;
  cli::NetCache nets(setup, "");
  const EmaRequest a{0.07, std::nullopt, false}, b{0.15, std::nullopt, false};
  const Denoiser& planned = nets.plan(kSet, a, "nets.guide_ema");
  EXPECT_FALSE(planned.built());
  ASSERT_TRUE(planned.posthoc_ema());
  EXPECT_EQ(planned.posthoc_ema()->std, 0.07);
  EXPECT_EQ(planned.info().ema_std, 0.07);
  EXPECT_THROW(probe(planned), std::logic_error);

  const Denoiser& built = nets.get(kSet, a, "nets.guide_ema");
  EXPECT_EQ(&built, &planned);  // built in place: the reference given before now sees the net
  EXPECT_TRUE(planned.built());
  const torch::Tensor first = probe(built);

  const Denoiser& other = nets.get(kSet, b, "nets.guide_ema");  // get() keeps what it built: both alive
  EXPECT_TRUE(planned.built() && other.built());
  EXPECT_FALSE(torch::equal(probe(other), first));

  nets.release(kSet, a);
  EXPECT_FALSE(planned.built());
  EXPECT_TRUE(other.built());
  EXPECT_EQ(planned.posthoc_ema()->std, 0.07);  // still says what it was
  EXPECT_EQ(planned.path(), kSet);
  EXPECT_EQ(nets.file_hashes().size(), 1u);

  EXPECT_EQ(&nets.get(kSet, a, "nets.guide_ema"), &planned);
  EXPECT_TRUE(torch::equal(probe(planned), first));
}

TEST(NetCache, AStreamedSetBuildsEveryDescribedLengthInItsOnePass) {
  cli::SamplingSetup setup;
  setup.ema_memory = 1;
  cli::NetCache nets(setup, "");
  const Denoiser& a = nets.plan(kSet, EmaRequest{0.07, std::nullopt, false}, "ema");
  const Denoiser& b = nets.plan(kSet, EmaRequest{0.15, std::nullopt, false}, "ema");
  nets.get(kSet, EmaRequest{0.07, std::nullopt, false}, "ema");
  EXPECT_TRUE(a.built() && b.built());

  cli::SamplingSetup resident_setup;
  cli::NetCache resident(resident_setup, "");
  EXPECT_TRUE(torch::equal(probe(b), probe(resident.get(kSet, EmaRequest{0.15, std::nullopt, false}, "ema"))));
}

TEST(Denoiser, WeightsDigestIsEqualExactlyForNetsThatDenoiseAlike) {
  // The demo set's 0.05 at its last training length is guide.pt (docs/experiments.md): tune merges the two.
  const SnapshotSet set = SnapshotSet::load(kSet, torch::kCPU);
  const Denoiser at_005 = set.build(set.plan(EmaRequest{0.05, std::nullopt, false}, "ema"));
  const Denoiser at_010 = set.build(set.plan(EmaRequest{0.10, std::nullopt, false}, "ema"));
  const std::string guide_file = std::string(AUTOGUIDE_SOURCE_DIR) + "/models/demo/guide.pt";
  const Denoiser file = Denoiser::load(guide_file, torch::kCPU, NetPrecision::FP32);
  const Denoiser again = Denoiser::load(guide_file, torch::kCPU, NetPrecision::FP32);
  const Denoiser bf16 = Denoiser::load(guide_file, torch::kCPU, NetPrecision::BF16);
  EXPECT_EQ(file.weights_sha256().size(), 64u);
  EXPECT_EQ(file.weights_sha256(), again.weights_sha256());
  // Equal digests where the outputs are equal bit for bit, different ones where they are not.
  EXPECT_TRUE(torch::equal(probe(at_005), probe(file)));
  EXPECT_EQ(at_005.weights_sha256(), file.weights_sha256());
  EXPECT_FALSE(torch::equal(probe(at_010), probe(file)));
  EXPECT_NE(at_010.weights_sha256(), file.weights_sha256());
  EXPECT_NE(bf16.weights_sha256(), file.weights_sha256());  // the same file sampled in bf16 makes other images
}

}  // namespace
