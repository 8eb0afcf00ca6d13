#include "autoguide/pixels.hpp"

#include <chrono>
#include <filesystem>

#include "autoguide/error.hpp"

namespace autoguide {

bool makes_latents(const ModelInfo& net) { return net.encoder.type == "vae"; }

PixelDecoder PixelDecoder::for_net(const ModelInfo& net, const std::string& net_name, const VaeDecoder* vae,
                                   int vae_batch) {
  if (vae_batch < 1) throw UsageError("the VAE batch must be at least 1");
  const int64_t res = net.img_resolution;
  if (!makes_latents(net)) {
    if (vae)
      throw UsageError("a VAE decodes latents, but " + net_name + " makes pixels (encoder " + net.encoder.type +
                       "); drop the VAE");
    if (net.img_channels != 1 && net.img_channels != 3)
      throw UsageError(net_name + " outputs " + std::to_string(net.img_channels) + " channels, which are not an image");
    return PixelDecoder({}, {}, nullptr, vae_batch, {net.img_channels, res, res});
  }
  if (!vae) throw UsageError(net_name + " makes SD-VAE latents and needs a VAE decoder to make pixels");
  check_vae_compatible(*vae, net, net_name);
  const int64_t f = vae->info().scale_factor;
  return PixelDecoder(net.encoder.scale, net.encoder.bias, vae, vae_batch, {vae->info().out_channels, res * f, res * f});
}

torch::Tensor PixelDecoder::operator()(const torch::Tensor& samples) {
  if (!vae_) return decode_rgb(samples);
  const auto start = std::chrono::steady_clock::now();
  torch::Tensor pixels = decode_latents(*vae_, samples, scale_, bias_, vae_batch_);
  vae_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return pixels;
}

nlohmann::json PixelDecoder::provenance() const {
  if (!vae_) return nlohmann::json::object();
  return {{"vae", std::filesystem::path(vae_->path()).filename().string()},
          {"vae_sha256", vae_->file_sha256().substr(0, 12)},  // the prefix length of the nets' hashes
          {"vae_dtype", to_string(vae_->precision())}};
}

}  // namespace autoguide
