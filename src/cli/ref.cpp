// `autoguide ref`: feature statistics of a reference image set, for `autoguide fid --ref`.
#include <cstdio>
#include <iostream>

#include "atomic_file.hpp"
#include "autoguide/error.hpp"
#include "npy.hpp"
#include "commands.hpp"
#include "device.hpp"
#include "features.hpp"
#include "ranks.hpp"

namespace autoguide::cli {

namespace {

struct RefOptions {
  std::string detector, images, out, features_out, device = "auto";
  int64_t batch = 64;
  int threads = 0;
  double dist_timeout = 1800;
  bool overwrite = false, quiet = false;
};

void run_ref(const RefOptions& o, const Ranks& ranks) {
  check_batch(o.batch);
  if (o.features_out == o.out) throw UsageError("--out and --features-out must be different files");
  // Everything that can be checked cheaply is checked before the detector runs over the whole set.
  for (const auto& f : {o.out, o.features_out}) {
    if (f.empty()) continue;
    if (!o.overwrite && file_exists(f)) throw UsageError(f + " already exists; add --overwrite to replace it");
    ensure_writable_parent(f);
  }
  const ImageSet images = ImageSet::open(o.images);
  const torch::Device device = select_device(o.device, o.threads);
  ranks.use_device(device);
  Detector detector = Detector::load(o.detector, device);
  const SetFeatures set = measure_set(detector, images, o.batch, !o.features_out.empty(), !o.quiet, ranks);
  if (!ranks.root()) return;
  write_stats(o.out, set.stats);
  try {
    if (!o.features_out.empty()) write_npy(o.features_out, set.features);
  } catch (...) {
    std::remove(o.out.c_str());  // all outputs or none
    throw;
  }
  if (!o.quiet)
    std::cerr << "autoguide: statistics of " << images.describe() << " (" << set.stats.dim() << " features) -> "
              << o.out << (o.features_out.empty() ? "" : ", features -> " + o.features_out) << "\n";
}

}  // namespace

void add_ref(CLI::App& app) {
  auto* cmd = app.add_subcommand("ref", "Feature statistics of a reference image set (for fid --ref)");
  static RefOptions o;
  cmd->add_option("--detector", o.detector, "Feature detector: TorchScript, uint8 [N,C,H,W] -> features [N,D]")
      ->required();
  cmd->add_option("--images", o.images,
                  "Folder of PNGs (recursive) or .npy of uint8 [N,C,H,W] or float samples in [-1,1]")
      ->required();
  cmd->add_option("--out", o.out, "Statistics file to write (.npz: mu, sigma, num_images)")->required();
  cmd->add_option("--features-out", o.features_out, "Also write the raw features, float32 [N,D] .npy (for fid --pr)");
  cmd->add_option("--batch", o.batch, "Images per detector call")->capture_default_str();
  cmd->add_flag("--overwrite", o.overwrite, "Replace existing output files");
  add_device_options(*cmd, o.device, o.threads, o.dist_timeout);
  cmd->add_flag("--quiet,-q", o.quiet, "No progress or summary on stderr");
  cmd->callback([cmd] { run_as_rank(*cmd, o.dist_timeout, [](const Ranks& ranks) { run_ref(o, ranks); }); });
}

}  // namespace autoguide::cli
