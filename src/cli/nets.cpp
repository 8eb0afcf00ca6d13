#include "nets.hpp"

#include "autoguide/error.hpp"

namespace autoguide::cli {

const Denoiser& NetCache::get(const std::string& path) {
  auto it = nets_.find(path);
  if (it == nets_.end()) it = nets_.emplace(path, Denoiser::load(path, setup_.device, setup_.precision, setup_.fast)).first;
  return it->second;
}

PixelDecoder& NetCache::decoder(const Denoiser& main) {
  if (auto it = decoders_.find(&main); it != decoders_.end()) return it->second;
  const ModelInfo& info = main.info();
  const bool latent = makes_latents(info);
  if (latent && vae_path_.empty())
    throw UsageError(main.path() + " makes SD-VAE latents; to write images give --vae VAE.pt (convert "
                     "stabilityai/sd-vae-ft-mse with scripts/export_vae.py diffusion_pytorch_model.safetensors "
                     "VAE.pt)" + latent_hint_);
  if (!latent && !vae_path_.empty())
    throw UsageError("--vae decodes latents, but " + main.path() + " makes pixels (encoder " + info.encoder.type +
                     "); drop --vae");
  if (latent && !vae_) vae_.emplace(VaeDecoder::load(vae_path_, setup_.device, setup_.vae_precision));
  PixelDecoder d = PixelDecoder::for_net(info, main.path(), latent ? &*vae_ : nullptr, setup_.vae_batch);
  return decoders_.emplace(&main, std::move(d)).first->second;
}

std::map<std::string, std::string> NetCache::file_hashes() const {
  std::map<std::string, std::string> files;
  for (const auto& [path, net] : nets_) files["the file " + path] = "sha256 " + net.file_sha256();
  if (vae_) files["the file " + vae_->path()] = "sha256 " + vae_->file_sha256();
  return files;
}

}  // namespace autoguide::cli
