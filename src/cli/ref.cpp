// `autoguide ref`: feature statistics of a reference image set, for `autoguide fid --ref`.
#include <cstdio>
#include <iostream>

#include "atomic_file.hpp"
#include "autoguide/error.hpp"
#include "npy.hpp"
#include "commands.hpp"
#include "device.hpp"
#include "options.hpp"
#include "features.hpp"
#include "ranks.hpp"

namespace autoguide::cli {

namespace {

void run_ref(const Params& o, const Ranks& ranks) {
  if (o.detectors.size() != 1) throw UsageError("ref measures in one feature space: give one --detector");
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
  Detector detector = Detector::load(o.detectors.front(), device);
  const SetFeatures set = measure_set(detector, images, {o.batch, !o.features_out.empty(), !o.quiet}, ranks);
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
  auto* cmd = app.add_subcommand("ref", subcommand_help("ref"));
  static Params o;
  o.batch = 64;
  add_options(*cmd, o);
  for (const char* name : {"--detector", "--images", "--out"}) cmd->get_option(name)->required();
  cmd->footer(
      "Examples:\n"
      "  autoguide ref --detector inception.pt --images imagenet-val/ --out imagenet-512.npz\n"
      "  autoguide ref --detector det.pt --images real.npy --out ref.npz --features-out ref_features.npy");
  cmd->callback([cmd] { run_as_rank(*cmd, o.dist_timeout, [](const Ranks& ranks) { run_ref(o, ranks); }); });
}

}  // namespace autoguide::cli
