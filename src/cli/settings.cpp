#include "settings.hpp"

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "autoguide/decoder.hpp"
#include "autoguide/error.hpp"
#include "autoguide/grid.hpp"
#include "autoguide/image_output.hpp"
#include "autoguide/seeds.hpp"
#include "device.hpp"
#include "features.hpp"
#include "progress.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

void add_sampling_options(CLI::App& cmd, SamplingOptions& o) {
  auto& s = o.sampler;
  o.seeds_opt = cmd.add_option("--seeds", o.seeds, "Seeds, the same for every setting (default 0-7, or 0..N-1 with --num N)");
  cmd.add_option("--class", o.class_idx, "Class label (default: drawn from each seed)");
  cmd.add_option("--batch", o.batch, "Maximum batch size")->capture_default_str();
  cmd.add_option("--sampler", o.sampler_name, "heun (EDM2's), euler or dpmpp2m")->capture_default_str();
  cmd.add_option("--steps", s.schedule.num_steps, "Number of sampling steps")->capture_default_str();
  cmd.add_option("--sigma_min,--sigma-min", s.schedule.sigma_min, "Lowest noise level")->capture_default_str();
  cmd.add_option("--sigma_max,--sigma-max", s.schedule.sigma_max, "Highest noise level")->capture_default_str();
  cmd.add_option("--rho", s.schedule.rho, "Time step exponent")->capture_default_str();
  cmd.add_option("--S_churn,--S-churn,--s-churn", s.S_churn, "Stochasticity strength")->capture_default_str();
  cmd.add_option("--S_min,--S-min,--s-min", s.S_min, "Stochasticity min noise level")->capture_default_str();
  cmd.add_option("--S_max,--S-max,--s-max", s.S_max, "Stochasticity max noise level")->capture_default_str();
  cmd.add_option("--S_noise,--S-noise,--s-noise", s.S_noise, "Stochasticity noise inflation")->capture_default_str();
  cmd.add_option("--interval-sigma,--interval_sigma", o.interval_sigma, "Guide only where sigma_i is in (LO,HI], e.g. 0.28,2.9");
  cmd.add_option("--interval-steps,--interval_steps", o.interval_steps, "Guide only on steps A..B (inclusive), e.g. 17,22");
  cmd.add_option("--dtype", o.dtype, "Network precision: auto (fp16 on CUDA, fp32 on CPU, as EDM2), fp32, fp16, bf16")->capture_default_str();
  cmd.add_option("--detector", o.detector, "Feature detector (TorchScript, uint8 [N,C,H,W] -> [N,D]): measure each setting's FD");
  cmd.add_option("--ref", o.ref, "Reference statistics for the FD (.npz from autoguide ref)");
  cmd.add_option("--num", o.num, "Samples per setting for the FD: seeds 0..N-1 unless --seeds is given");
  cmd.add_option("--grid-cols,--grid_cols", o.grid_cols, "Seeds shown per grid row (the first ones)")->capture_default_str();
  add_device_options(cmd, o.device, o.threads);
  cmd.add_flag("--quiet,-q", o.quiet, "No progress or summary on stderr");
}

std::string seeds_text(const SamplingOptions& o) {
  const bool seeds_given = o.seeds_opt && o.seeds_opt->count() > 0;
  return seeds_given || o.num == 0 ? o.seeds : "0-" + std::to_string(o.num - 1);
}

GenerateRequest base_request(const SamplingOptions& o) {
  if (o.detector.empty() != o.ref.empty())
    throw UsageError("the Fréchet distance needs both --detector X.pt and --ref STATS.npz");
  if (o.num != 0 && o.detector.empty())
    throw UsageError("--num sets the samples per setting for the Fréchet distance: add --detector and --ref");
  if (o.num < 0 || o.num == 1) throw UsageError("--num must be at least 2 (feature statistics need 2 images)");
  if (o.grid_cols < 1) throw UsageError("--grid-cols must be at least 1");
  GenerateRequest req;
  const bool seeds_given = o.seeds_opt && o.seeds_opt->count() > 0;
  req.seeds = parse_seed_list(seeds_text(o));
  if (seeds_given && o.num != 0 && static_cast<int64_t>(req.seeds.size()) != o.num)
    throw UsageError("--num " + std::to_string(o.num) + " and --seeds " + o.seeds + " (" +
                     std::to_string(req.seeds.size()) + " seeds) disagree; give one of them");
  if (!o.detector.empty() && req.seeds.size() < 2)
    throw UsageError("the Fréchet distance needs at least 2 samples per setting; give more --seeds or --num");
  req.class_idx = o.class_idx;
  req.max_batch = o.batch;
  req.sampler = o.sampler;
  set_sampling(req, o.sampler_name, o.interval_sigma, o.interval_steps);
  if (req.max_batch < 1) throw UsageError("--batch must be at least 1");
  return req;
}

const Denoiser& NetCache::get(const std::string& path) {
  auto it = nets_.find(path);
  if (it == nets_.end()) it = nets_.emplace(path, Denoiser::load(path, device_, precision_)).first;
  return it->second;
}

void check_pixels(const Denoiser& net) {
  const auto& info = net.info();
  if (info.encoder.type == "vae")
    throw UsageError(net.path() + " makes VAE latents, and decoding latents to pixels is not supported here yet");
  if (info.img_channels != 1 && info.img_channels != 3)
    throw UsageError(net.path() + " outputs " + std::to_string(info.img_channels) +
                     " channels, which are not an image");
}

std::optional<FdSetup> open_fd(const SamplingOptions& o, const torch::Device& device, const ModelInfo& main) {
  if (o.detector.empty()) return std::nullopt;
  FeatureStats ref = read_stats(o.ref);
  FdSetup fd{Detector::load(o.detector, device), std::move(ref), o.ref};
  probe_detector(fd.detector, {main.img_channels, main.img_resolution, main.img_resolution}, fd.ref.dim(), o.ref);
  return fd;
}

void run_rows(std::vector<Row>& rows, const GenerateRequest& base, const SamplingOptions& o,
              const std::string& outdir, FdSetup* fd) {
  ProgressLine line(!o.quiet);
  const int64_t preview = std::min<int64_t>(o.grid_cols, static_cast<int64_t>(base.seeds.size()));
  for (size_t i = 0; i < rows.size(); ++i) {
    Row& row = rows[i];
    if (row.same_as >= 0) {
      const Row& earlier = rows[static_cast<size_t>(row.same_as)];
      row.run = earlier.run, row.fd = earlier.fd, row.folder = earlier.folder;
      continue;
    }
    const GenerateRequest req = row.setting.request(base);
    const GuidanceMode mode = run_mode(req, row.setting.nets);
    const nlohmann::json params = sample_parameters(req, row.setting.nets, mode, o.dtype);
    const std::string dir = row.folder.empty() ? "" : (fs::path(outdir) / row.folder).string();
    std::optional<StreamStats> stats;
    if (fd) stats.emplace(fd->detector, fd->ref.dim(), fd->ref_path);
    auto sink = [&](const BatchResult& r, const torch::Tensor& pixels) {
      if (stats) stats->add(pixels);
      if (dir.empty()) return;
      for (size_t k = 0; k < r.seeds.size(); ++k) {
        const auto idx = static_cast<int64_t>(k);
        write_sample_png(image_path(dir, r.seeds[k], false), pixels[idx], params, r.seeds[k],
                         r.classes.defined() ? nlohmann::json(r.classes[idx].item<int64_t>()) : nlohmann::json());
      }
    };
    auto progress = [&](const GenerateProgress& p) {
      const double within = (p.images_done + double(p.step) / p.num_steps *
                                                 std::min<int64_t>(base.max_batch, p.images_total - p.images_done)) /
                            std::max<int64_t>(p.images_total, 1);
      line.update((i + within) / rows.size(), "setting " + std::to_string(i + 1) + "/" + std::to_string(rows.size()) +
                                                  " (" + row.setting.label + ")  image " + std::to_string(p.images_done) +
                                                  "/" + std::to_string(p.images_total));
    };
    row.run = run_setting(row.setting, base, decode_rgb, preview, sink, progress);
    if (stats) row.fd = frechet_distance(stats->finish(), fd->ref);
    line.finish();
    if (!o.quiet) {
      char fd_text[48] = "";
      if (row.fd) std::snprintf(fd_text, sizeof fd_text, ", fd %.6g", *row.fd);
      std::cerr << "autoguide: " << row.setting.label << " (" << to_string(row.run.mode) << "): "
                << base.seeds.size() << " images in " << row.run.seconds << " s" << fd_text << "\n";
    }
  }
}

torch::Tensor rows_grid(const std::vector<Row>& rows, const GenerateRequest& base) {
  std::vector<torch::Tensor> tiles;
  GridLabels labels;
  for (const auto& r : rows) {
    tiles.push_back(r.run.preview);
    labels.rows.push_back(r.setting.label);
  }
  const int64_t cols = rows.front().run.preview.size(0);
  for (int64_t k = 0; k < cols; ++k) labels.columns.push_back(std::to_string(base.seeds[static_cast<size_t>(k)]));
  labels.corner = "seed";
  return make_labelled_grid(torch::cat(tiles), static_cast<int>(cols), labels);
}

}  // namespace autoguide::cli
