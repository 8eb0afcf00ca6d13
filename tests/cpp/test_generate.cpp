// The generation pipeline's bookkeeping: progress over EDM2's real batch split, the precision recorded, and
// the pixel decoder chosen from the main net's metadata.
#include <gtest/gtest.h>

#include "autoguide/error.hpp"
#include "autoguide/generate.hpp"
#include "image_output.hpp"
#include "autoguide/decoder.hpp"
#include "autoguide/seeds.hpp"
#include "fixtures.hpp"

using namespace autoguide;

TEST(Progress, IsMonotonicOverEdm2sSplitAndEndsAtExactlyOne) {
  auto main = Denoiser::load(fixture("main.pt"), torch::kCPU);
  GenerateRequest req;
  req.seeds = parse_seed_list("0-39");
  req.max_batch = 32;  // EDM2 splits 40 seeds at batch 32 into 20 + 20, not 32 + 8
  req.sampler.schedule.num_steps = 3;
  std::vector<double> seen;
  std::vector<int64_t> batch_sizes;
  generate({&main}, req, [&](const BatchResult& r) { batch_sizes.push_back(r.seeds.size()); },
           [&](const GenerateProgress& p) { seen.push_back(p.fraction()); });
  ASSERT_EQ(batch_sizes, (std::vector<int64_t>{20, 20}));
  // Hand-computed: (images done before the batch + its size * steps / 3) / 40.
  const std::vector<double> expected = {20 / 3.0 / 40, 40 / 3.0 / 40, 0.5, (20 + 20 / 3.0) / 40,
                                        (20 + 40 / 3.0) / 40, 1.0};
  ASSERT_EQ(seen.size(), expected.size());
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_NEAR(seen[i], expected[i], 1e-12) << i;
    if (i > 0) {
      EXPECT_GE(seen[i], seen[i - 1]) << i;
    }
  }
  EXPECT_EQ(seen.back(), 1.0);
}

TEST(Progress, SkippedBatchesCountAsDone) {
  GenerateProgress p;
  p.images_total = 40, p.images_done = 20, p.batch_images = 20, p.num_steps = 4, p.step = 2;
  EXPECT_DOUBLE_EQ(p.fraction(), 0.75);
  p.images_total = 0;
  EXPECT_EQ(p.fraction(), 1.0);
}

TEST(Precision, AutoIsRecordedAsWhatTheNetComputesIn) {
  auto main = Denoiser::load(fixture("main.pt"), torch::kCPU);  // --dtype auto
  EXPECT_EQ(main.precision(), NetPrecision::FP32);
  ModelInfo fp16_net = main.info();
  fp16_net.use_fp16 = true;
  EXPECT_EQ(effective_precision(NetPrecision::Auto, fp16_net, torch::Device(torch::kCUDA, 0)), NetPrecision::FP16);
  EXPECT_EQ(effective_precision(NetPrecision::Auto, fp16_net, torch::kCPU), NetPrecision::FP32);
  fp16_net.use_fp16 = false;
  EXPECT_EQ(effective_precision(NetPrecision::Auto, fp16_net, torch::Device(torch::kCUDA, 0)), NetPrecision::FP32);
  EXPECT_EQ(effective_precision(NetPrecision::BF16, fp16_net, torch::kCPU), NetPrecision::BF16);
  GenerateRequest req;
  auto params = sample_parameters(req, {&main}, GuidanceMode::None, nullptr);
  EXPECT_EQ(params["dtype"], "fp32");
  auto bf16 = Denoiser::load(fixture("main.pt"), torch::kCPU, NetPrecision::BF16);
  EXPECT_EQ(sample_parameters(req, {&bf16}, GuidanceMode::None, nullptr)["dtype"], "bf16");
}

TEST(PixelDecoder, IsChosenFromTheNetsMetadata) {
  auto main = Denoiser::load(fixture("main.pt"), torch::kCPU);
  auto rgb = PixelDecoder::for_net(main.info(), "main.pt");
  EXPECT_EQ(rgb.image_shape(), (std::array<int64_t, 3>{3, 8, 8}));
  EXPECT_EQ(rgb.vae(), nullptr);
  EXPECT_TRUE(rgb.provenance().empty());
  const auto x = torch::tensor({-2.0f, -1.0f, 0.0f, 0.999f, 1.0f, 3.0f}).reshape({1, 1, 2, 3});
  EXPECT_TRUE(torch::equal(rgb(x).flatten(), torch::tensor({0, 0, 128, 255, 255, 255}, torch::kUInt8)));

  auto vae = VaeDecoder::load(fixture("vae.pt"), torch::kCPU);
  EXPECT_THROW(PixelDecoder::for_net(main.info(), "main.pt", &vae), UsageError);  // a VAE for a pixel net
  ModelInfo latent = main.info();
  latent.img_channels = 4;
  latent.encoder.type = "vae";
  latent.encoder.scale = {1, 1, 1, 1};
  latent.encoder.bias = {0, 0, 0, 0};
  EXPECT_THROW(PixelDecoder::for_net(latent, "latent.pt"), UsageError);  // latents need a VAE
  auto dec = PixelDecoder::for_net(latent, "latent.pt", &vae, 2);
  EXPECT_EQ(dec.image_shape(), (std::array<int64_t, 3>{3, 64, 64}));
  EXPECT_EQ(dec.provenance()["vae"], "vae.pt");
  EXPECT_EQ(dec.provenance()["vae_dtype"], "fp32");
  const auto z = torch::randn({3, 4, 8, 8});
  EXPECT_TRUE(torch::equal(dec(z), decode_latents(vae, z, latent.encoder.scale, latent.encoder.bias, 2)));
  EXPECT_GT(dec.vae_seconds(), 0);
  latent.encoder.scale = {1, 1, 1};  // a scale per channel is required
  EXPECT_THROW(PixelDecoder::for_net(latent, "latent.pt", &vae), UsageError);
}
