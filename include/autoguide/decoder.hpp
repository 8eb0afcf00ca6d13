// Samples -> uint8 pixels, the one way every sampling command reaches its images: EDM2's StandardRGBEncoder
// for pixel nets, its StabilityVAEEncoder (an SD VAE decoder) for latent nets, chosen from the main net's
// metadata (PixelDecoder, at the end; the parts it is made of come first).
#pragma once
#include <torch/script.h>
#include <torch/types.h>

#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autoguide/model.hpp"

namespace autoguide {

// EDM2's StandardRGBEncoder.decode: x*127.5 + 128, clipped to [0,255], truncated (= rounding of 127.5(x+1)).
// x [N,C,H,W] float -> uint8 [N,C,H,W] on the CPU.
torch::Tensor decode_rgb(const torch::Tensor& x);

// What a VAE file's autoguide.json says (kind "vae", written by scripts/export_vae.py; docs/model_format.md).
struct VaeInfo {
  int format_version = 0;
  int latent_channels = 0;
  int scale_factor = 0;  // output pixels per latent pixel, per side
  int out_channels = 3;
  std::string source_file, source_sha256;
  nlohmann::json raw;
};

VaeInfo parse_vae_info(const std::string& json_text, const std::string& origin);

// A loaded TorchScript SD-VAE decoder: forward(z) maps SD-VAE latents [N,C,H,W] to images [N,3,fH,fW] in
// about [0,1], float32 in and out whatever precision it runs in.
class VaeDecoder {
 public:
  // Loads and validates the file; FP32 (= Auto, EDM2's choice) or BF16/FP16 where the device runs the whole
  // decoder in it (tried on a one-pixel latent). Throws UsageError for bad files or precisions.
  static VaeDecoder load(const std::string& path, const torch::Device& device,
                         NetPrecision precision = NetPrecision::FP32);

  // One batch, as is: no scaling, no clamping.
  torch::Tensor operator()(const torch::Tensor& z) const;

  const VaeInfo& info() const { return info_; }
  const std::string& path() const { return path_; }
  const std::string& file_sha256() const { return sha256_; }
  const torch::Device& device() const { return device_; }
  NetPrecision precision() const { return precision_; }

 private:
  VaeDecoder(torch::jit::Module m, VaeInfo info, std::string path, std::string sha, torch::Device device,
             NetPrecision precision)
      : module_(std::move(m)), info_(std::move(info)), path_(std::move(path)), sha256_(std::move(sha)),
        device_(device), precision_(precision) {}

  mutable torch::jit::Module module_;
  VaeInfo info_;
  std::string path_, sha256_;
  torch::Device device_;
  NetPrecision precision_;
};

// Refuses (UsageError) a VAE that cannot decode the main net's samples: latent channels, scale/bias lengths.
void check_vae_compatible(const VaeDecoder& vae, const ModelInfo& net, const std::string& net_name);

// Images per VAE decode call (EDM2's encoder batch): at least kMinVaeBatch; check_vae_batch throws FieldError.
inline constexpr int kMinVaeBatch = 1;
void check_vae_batch(int vae_batch);

// EDM2's StabilityVAEEncoder.decode: x = (z - bias) / scale per channel (float32; scale and bias from the main
// net's metadata), the VAE in chunks of `batch`, then clamp(0,1)*255 truncated to uint8.
// z [N,C,H,W] -> uint8 [N,3,fH,fW] on the CPU.
torch::Tensor decode_latents(const VaeDecoder& vae, const torch::Tensor& z, const std::vector<float>& scale,
                             const std::vector<float>& bias, int batch);

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
