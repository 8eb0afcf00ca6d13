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
  if (all.size() > 1) throw UsageError(flag + " takes one EMA length here; sweep takes a list or range");
  if (all.empty()) return std::nullopt;
  return all.front();
}

namespace {

std::string ema_key(const std::string& path, const EmaRequest& ema) {
  return path + "\n" + std::to_string(ema.std) + "@" + std::to_string(ema.kimg.value_or(-1)) +
         (ema.keep_fp32 ? " fp32" : "");
}

}  // namespace

const SnapshotSet& NetCache::set_of(const std::string& path, const std::string& ema_field) {
  auto set = sets_.find(path);
  if (set == sets_.end()) {
    if (std::filesystem::is_regular_file(path) && !is_snapshot_set(path))
      throw FieldError(ema_field, path + " is a single net, not a snapshot set: drop " + ema_field +
                                      ", or give a set made by scripts/export_phema_set.py");
    set = sets_.emplace(path, SnapshotSet::load(path, setup_.device, setup_.ema_memory)).first;
  }
  return set->second;
}

// The length's entry, described (unbuilt) when new.
Denoiser& NetCache::entry(const std::string& path, const EmaRequest& ema, const std::string& ema_field) {
  const std::string key = ema_key(path, ema);
  if (auto it = nets_.find(key); it != nets_.end()) return it->second;
  const SnapshotSet& set = set_of(path, ema_field);
  const PosthocEma plan = set.plan(ema, ema_field);
  ModelInfo info = set.info();
  info.ema_std = plan.std;
  info.training_kimg = static_cast<double>(plan.nimg / 1000);
  lengths_[key] = {path, plan, false};
  return nets_.emplace(key, Denoiser::unbuilt(std::move(info), path, set.file_sha256(), setup_.device,
                                              setup_.precision, setup_.fast, plan))
      .first->second;
}

const Denoiser& NetCache::plan(const std::string& path, const std::optional<EmaRequest>& ema, const std::string& ema_field) {
  if (!ema) return get(path, ema, ema_field);
  return entry(path, *ema, ema_field);
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
  Denoiser& net = entry(path, *ema, ema_field);
  if (net.built()) return net;
  const SnapshotSet& set = sets_.at(path);
  // Which lengths this pass builds: this one; for a streamed set also every described length never built.
  std::vector<std::string> keys = {ema_key(path, *ema)};
  if (set.streamed())
    for (const auto& [key, length] : lengths_)
      if (length.path == path && !length.was_built && key != keys.front()) keys.push_back(key);
  std::vector<PosthocEma> plans;
  for (const auto& key : keys) plans.push_back(lengths_.at(key).plan);
  std::vector<Denoiser> built = set.build_all(plans, setup_.precision, setup_.fast);
  for (size_t k = 0; k < keys.size(); ++k) {
    nets_.at(keys[k]) = std::move(built[k]);  // in place: references to the entry see the built net
    lengths_.at(keys[k]).was_built = true;
  }
  return net;
}

void NetCache::release(const std::string& path, const std::optional<EmaRequest>& ema) {
  if (!ema) return;
  if (auto it = nets_.find(ema_key(path, *ema)); it != nets_.end()) it->second.release();
}

bool NetCache::streamed(const std::string& path) const {
  auto it = sets_.find(path);
  return it != sets_.end() && it->second.streamed();
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
