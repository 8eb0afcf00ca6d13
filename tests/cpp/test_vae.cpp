// Latent decoding: the VAE decoder file against our Python module, and EDM2's latent -> pixel arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "autoguide/decoder.hpp"
#include "autoguide/error.hpp"
#include "fixtures.hpp"
#include "npy.hpp"

using namespace autoguide;

namespace {


// EDM2's StabilityVAEEncoder scale and bias, as float32 (edm2.md section 3).
const std::vector<float> kScale = {0.11990407f, 0.10822511f, 0.13477089f, 0.15243903f};
const std::vector<float> kBias = {-0.69664264f, -0.3517316f, -0.016172506f, 0.32774392f};

// A stand-in VAE whose output is exact float arithmetic on the latents (multiplications by powers of two,
// two roundings), upsampled 8x, so that the expected pixels can be computed by hand.
std::string write_linear_vae(const std::string& name, int latent_channels = 4) {
  torch::jit::Module m("LinearVae");
  m.define(R"(
def forward(self, z):
    y = z[:, 0:3] * 0.0625 + z[:, 3:4] * 0.03125 + 0.5
    return y.repeat_interleave(8, 2).repeat_interleave(8, 3)
)");
  const std::string path = fixture(name);
  m.save(path, {{"autoguide.json", R"({"format_version": 1, "kind": "vae", "latent_channels": )" +
                                        std::to_string(latent_channels) + R"(, "scale_factor": 8})"}});
  return path;
}

}  // namespace

TEST(VaeDecoder, ReproducesPythonModule) {
  auto vae = VaeDecoder::load(fixture("vae.pt"), torch::kCPU);
  EXPECT_EQ(vae.info().latent_channels, 4);
  EXPECT_EQ(vae.info().scale_factor, 8);
  auto z = read_npy(fixture("vae_z.npy"));
  auto expected = read_npy(fixture("vae_out.npy"));
  auto out = vae(z);
  ASSERT_EQ(out.sizes(), expected.sizes());
  EXPECT_EQ(out.size(2), 40);
  EXPECT_EQ(out.size(3), 48);
  EXPECT_LT((out - expected).abs().max().item<double>(), 1e-5);
  // The fixture's outputs must straddle the clamp range, or the pixel tests below would prove little.
  EXPECT_GT(((expected > 0) & (expected < 1)).to(torch::kFloat32).mean().item<double>(), 0.3);
}

TEST(VaeDecoder, Bf16EqualsPytorchsBf16AndStaysNearFp32) {
  auto z = read_npy(fixture("vae_z.npy"));
  auto fp32 = read_npy(fixture("vae_out.npy"));
  auto bf16_python = read_npy(fixture("vae_out_bf16.npy"));
  auto vae = VaeDecoder::load(fixture("vae.pt"), torch::kCPU, NetPrecision::BF16);
  auto out = vae(z);
  EXPECT_EQ(out.scalar_type(), torch::kFloat32);
  // The same bf16 kernels as PyTorch's Python API on this CPU: equal up to the order of a few reductions.
  EXPECT_LT((out - bf16_python).abs().max().item<double>(), 1e-2);
  const double mean_err = (out - fp32).abs().mean().item<double>();
  EXPECT_GT(mean_err, 0);  // it really ran in bf16
  // bf16 keeps 8 significant bits and the error grows through the ~15 layers of this random-weight decoder,
  // whose outputs have mean magnitude ~0.5: measured 0.049 on an AMD EPYC without AVX512-BF16 (PyTorch's own
  // bf16 gives the same), under 0.02 on CPUs with it. The bound catches a decoder that is not run in bf16
  // consistently (e.g. fp32 weights with bf16 activations fail to run at all, garbage exceeds 0.3).
  EXPECT_LT(mean_err, 0.1) << "max " << (out - fp32).abs().max().item<double>();
}

TEST(VaeDecoder, RefusesFilesThatAreNoVae) {
  EXPECT_THROW(VaeDecoder::load(fixture("missing-vae.pt"), torch::kCPU), UsageError);
  EXPECT_THROW(VaeDecoder::load(fixture("x.npy"), torch::kCPU), UsageError);
  try {
    VaeDecoder::load(fixture("main.pt"), torch::kCPU);  // a denoiser in the --vae slot
    FAIL() << "a denoiser loaded as a VAE";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("is not a VAE decoder"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("scripts/export_vae.py"), std::string::npos) << e.what();
  }
}

TEST(VaeDecoder, Fp16IsRefusedCleanlyWhereTheCpuCannotRunIt) {
  try {
    auto vae = VaeDecoder::load(fixture("vae.pt"), torch::kCPU, NetPrecision::FP16);
    EXPECT_EQ(vae(read_npy(fixture("vae_z.npy"))).size(0), 3);
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("vae_precision fp16 is not supported"), std::string::npos) << e.what();
  }
}

TEST(DecodeLatents, IsEdm2sFormulaWithTruncation) {
  auto vae = VaeDecoder::load(write_linear_vae("linear_vae.pt"), torch::kCPU);
  torch::manual_seed(0);
  auto z = torch::randn({5, 4, 3, 2}) * 0.6;
  auto pixels = decode_latents(vae, z, kScale, kBias, 2);  // chunks of 2, 2, 1
  ASSERT_EQ(pixels.sizes(), (std::vector<int64_t>{5, 3, 24, 16}));
  ASSERT_EQ(pixels.scalar_type(), torch::kUInt8);
  auto zc = z.contiguous();
  const float* zp = zc.data_ptr<float>();
  int64_t interior = 0, truncated_down = 0;
  for (int64_t n = 0; n < 5; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t h = 0; h < 3; ++h)
        for (int64_t w = 0; w < 2; ++w) {
          auto x = [&](int64_t ch) { return (zp[((n * 4 + ch) * 3 + h) * 2 + w] - kBias[ch]) / kScale[ch]; };
          const float y = x(c) * 0.0625f + x(3) * 0.03125f + 0.5f;
          const float v = std::min(std::max(y, 0.0f), 1.0f) * 255.0f;
          const auto want = static_cast<uint8_t>(v);  // truncation, as torch's float -> uint8
          interior += (y > 0 && y < 1);
          truncated_down += (std::nearbyint(v) != std::floor(v));
          for (int64_t dy = 0; dy < 8; ++dy)
            for (int64_t dx = 0; dx < 8; ++dx)
              ASSERT_EQ(pixels[n][c][h * 8 + dy][w * 8 + dx].item<uint8_t>(), want)
                  << "image " << n << " channel " << c << " latent pixel " << h << "," << w << " y=" << y;
        }
  EXPECT_GT(interior, 20);        // most values are inside (0,1), so the formula itself is exercised
  EXPECT_GT(truncated_down, 5);   // and rounding would have given other pixels
  // The split into VAE batches changes nothing.
  EXPECT_TRUE(torch::equal(decode_latents(vae, z, kScale, kBias, 1), pixels));
  EXPECT_TRUE(torch::equal(decode_latents(vae, z, kScale, kBias, 64), pixels));
}

TEST(DecodeLatents, RefusesMismatches) {
  auto vae = VaeDecoder::load(write_linear_vae("linear_vae3.pt", 3), torch::kCPU);
  ModelInfo net;
  net.img_channels = 4;
  net.encoder.type = "vae";
  net.encoder.scale = kScale;
  net.encoder.bias = kBias;
  EXPECT_THROW(check_vae_compatible(vae, net, "net.pt"), UsageError);
  auto vae4 = VaeDecoder::load(write_linear_vae("linear_vae4.pt"), torch::kCPU);
  EXPECT_NO_THROW(check_vae_compatible(vae4, net, "net.pt"));
  net.encoder.scale.pop_back();
  EXPECT_THROW(check_vae_compatible(vae4, net, "net.pt"), UsageError);
  auto z = torch::zeros({1, 4, 2, 2});
  EXPECT_THROW(decode_latents(vae4, z, {1, 1, 1}, kBias, 4), UsageError);
  EXPECT_THROW(decode_latents(vae4, z, kScale, kBias, 0), UsageError);
}
