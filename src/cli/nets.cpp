#include "nets.hpp"

#include <filesystem>

#include "autoguide/error.hpp"
#include "option_values.hpp"

namespace autoguide::cli {

std::vector<EmaRequest> ema_requests(const std::string& text, const std::string& flag, const std::string& precision) {
  std::vector<EmaRequest> out;
  if (text.empty()) return out;
  const EmaLengths lengths = parse_ema_lengths(text, flag);
  for (double std : lengths.stds) out.push_back({std, lengths.kimg, precision == "fp32"});
  return out;
}

std::optional<EmaRequest> one_ema(const std::string& text, const std::string& flag, const std::string& precision) {
  const std::vector<EmaRequest> all = ema_requests(text, flag, precision);
  if (all.size() > 1) throw UsageError(flag + " takes one EMA length here; sweep takes a list or range of the guide's");
  if (all.empty()) return std::nullopt;
  return all.front();
}

const Denoiser& NetCache::get(const std::string& path, const std::optional<EmaRequest>& ema, const std::string& ema_field) {
  if (!ema) {
    if (is_snapshot_set(path))
      throw FieldError(ema_field, path + " is a snapshot set: choose the post-hoc EMA length to build with " + ema_field +
                                      " STD (e.g. 0.1)");
    auto it = nets_.find(path);
    if (it == nets_.end()) it = nets_.emplace(path, Denoiser::load(path, setup_.device, setup_.precision, setup_.fast)).first;
    return it->second;
  }
  const std::string key = path + "\n" + std::to_string(ema->std) + "@" + std::to_string(ema->kimg.value_or(-1)) +
                          (ema->keep_fp32 ? " fp32" : "");
  if (auto it = nets_.find(key); it != nets_.end()) return it->second;
  auto set = sets_.find(path);
  if (set == sets_.end()) {
    if (std::filesystem::is_regular_file(path) && !is_snapshot_set(path))
      throw FieldError(ema_field, path + " is a single net, not a snapshot set: drop " + ema_field +
                                      ", or give a set made by scripts/export_phema_set.py");
    set = sets_.emplace(path, SnapshotSet::load(path, setup_.device)).first;
  }
  const PosthocEma plan = set->second.plan(*ema, ema_field);
  return nets_.emplace(key, set->second.build(plan, setup_.precision, setup_.fast)).first->second;
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
  for (const auto& entry : nets_) files["the file " + entry.second.path()] = "sha256 " + entry.second.file_sha256();
  if (vae_) files["the file " + vae_->path()] = "sha256 " + vae_->file_sha256();
  return files;
}

}  // namespace autoguide::cli
