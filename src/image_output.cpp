#include "image_output.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "autoguide/png.hpp"
#include "autoguide/version.hpp"

namespace fs = std::filesystem;

namespace autoguide {

namespace {

std::string short_hash(const std::string& sha) { return sha.substr(0, 12); }

}  // namespace

std::string image_path(const std::string& outdir, int64_t seed, bool subdirs) {
  char name[32];
  std::snprintf(name, sizeof name, "%06lld.png", static_cast<long long>(seed));
  if (!subdirs) return (fs::path(outdir) / name).string();
  char sub[32];
  std::snprintf(sub, sizeof sub, "%06lld", static_cast<long long>(seed / 1000 * 1000));
  return (fs::path(outdir) / sub / name).string();
}

// How a net built from a snapshot set was averaged (PNG metadata and manifests); null for a model file.
nlohmann::json posthoc_ema_json(const Denoiser& net) {
  if (!net.posthoc_ema()) return nullptr;
  const PosthocEma& e = *net.posthoc_ema();
  return {{"std", e.std}, {"kimg", e.nimg / 1000}, {"nimg", e.nimg}, {"fit_residual", e.residual},
          {"precision", e.precision}};
}

nlohmann::json sample_parameters(const GenerateRequest& req, const Nets& nets, GuidanceMode mode,
                                 const PixelDecoder* decoder) {
  const auto& s = req.sampler;
  const Denoiser& net = *nets.main;
  nlohmann::json j = {{"guidance", req.guidance},
                      {"mode", to_string(mode)},
                      {"sampler", to_string(s.kind)},
                      {"interval", req.interval.describe()},
                      {"dtype", to_string(nets.main->precision())},
                      {"fast", nets.main->fast()},
                      {"steps", s.schedule.num_steps},
                      {"sigma_min", s.schedule.sigma_min},
                      {"sigma_max", s.schedule.sigma_max},
                      {"rho", s.schedule.rho},
                      {"S_churn", s.S_churn},
                      {"S_min", s.S_min},
                      {"S_max", std::isinf(s.S_max) ? nlohmann::json("inf") : nlohmann::json(s.S_max)},
                      {"S_noise", s.S_noise},
                      {"net", fs::path(net.path()).filename().string()},
                      {"net_sha256", short_hash(net.file_sha256())},
                      {"tool", "autoguide " AUTOGUIDE_VERSION},
                      {"commit", git_commit()}};
  if (net.posthoc_ema()) j["net_ema"] = posthoc_ema_json(net);
  if (nets.guide && mode != GuidanceMode::None) {
    j["gnet"] = fs::path(nets.guide->path()).filename().string();
    j["gnet_sha256"] = short_hash(nets.guide->file_sha256());
    if (nets.guide->posthoc_ema()) j["gnet_ema"] = posthoc_ema_json(*nets.guide);
  }
  if (nets.uncond && mode == GuidanceMode::Mixed) {
    j["uncond"] = fs::path(nets.uncond->path()).filename().string();
    j["uncond_sha256"] = short_hash(nets.uncond->file_sha256());
    j["alpha"] = req.alpha;
  }
  if (decoder) j.update(decoder->provenance());
  return j;
}

void write_sample_png(const std::string& path, const torch::Tensor& pixels, const nlohmann::json& params,
                      int64_t seed, const nlohmann::json& class_idx) {
  nlohmann::json meta = params;
  meta["seed"] = seed;
  meta["class"] = class_idx;
  fs::create_directories(fs::path(path).parent_path());
  write_png(path, pixels, {{"parameters", meta.dump()}});
}

}  // namespace autoguide
