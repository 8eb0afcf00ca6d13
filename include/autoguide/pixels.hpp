// Samples -> uint8 pixels, the one way every sampling command reaches its images: EDM2's StandardRGBEncoder
// for pixel nets, its StabilityVAEEncoder (an SD VAE decoder) for latent nets, chosen from the main net's
// metadata.
#pragma once
#include <torch/types.h>

#include <array>
#include <nlohmann/json.hpp>
#include <string>

#include "autoguide/decoder.hpp"
#include "autoguide/model.hpp"

namespace autoguide {

// True for nets whose samples are SD-VAE latents (encoder "vae" in their metadata).
bool makes_latents(const ModelInfo& net);

class PixelDecoder {
 public:
  // The decoder for `net`'s samples. A latent net needs `vae` (kept by pointer: it must outlive the decoder),
  // checked against the net; a pixel net must have 1 or 3 channels and takes no VAE. UsageError otherwise,
  // naming `net_name`.
  static PixelDecoder for_net(const ModelInfo& net, const std::string& net_name, const VaeDecoder* vae = nullptr,
                              int vae_batch = 4);

  // samples float [N,C,R,R] on any device -> uint8 [N,C',H,W] on the CPU.
  torch::Tensor operator()(const torch::Tensor& samples);

  std::array<int64_t, 3> image_shape() const { return shape_; }  // [C', H, W] of the images
  const VaeDecoder* vae() const { return vae_; }
  int vae_batch() const { return vae_batch_; }
  double vae_seconds() const { return vae_seconds_; }  // time spent decoding latents so far

  // What every output records about the decoding: the VAE file with a hash prefix and its precision.
  nlohmann::json provenance() const;

 private:
  PixelDecoder(std::vector<float> scale, std::vector<float> bias, const VaeDecoder* vae, int vae_batch,
               std::array<int64_t, 3> shape)
      : scale_(std::move(scale)), bias_(std::move(bias)), vae_(vae), vae_batch_(vae_batch), shape_(shape) {}

  std::vector<float> scale_, bias_;  // the net's latent scale and bias (VAE only)
  const VaeDecoder* vae_;
  int vae_batch_;
  std::array<int64_t, 3> shape_;
  double vae_seconds_ = 0;
};

}  // namespace autoguide
