// `autoguide fid`: Fréchet distance of an image set to reference statistics, and optionally precision/recall.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "autoguide/error.hpp"
#include "commands.hpp"
#include "device.hpp"
#include "features.hpp"
#include "ranks.hpp"

namespace autoguide::cli {

namespace {

constexpr int64_t kNeighbours = 3;  // Kynkäänniemi et al. 2019's k for improved precision/recall

struct FidOptions {
  std::string detector, images, ref, ref_images, device = "auto";
  int64_t batch = 64;
  int threads = 0;
  double dist_timeout = 1800;
  bool json = false, pr = false, quiet = false;
};

void run_fid(const FidOptions& o, const Ranks& ranks) {
  check_batch(o.batch);
  if (o.ref.empty() && o.ref_images.empty())
    throw UsageError("nothing to compare with: give --ref STATS (from autoguide ref) or --ref-images DIR|FILE.npy");
  if (o.pr && o.ref_images.empty())
    throw UsageError(
        "--pr needs the reference set itself: add --ref-images DIR|FILE.npy (images or ref --features-out)");
  // Cheap checks first: a bad stats file or image set should not cost a pass of the detector.
  std::optional<FeatureStats> ref;
  if (!o.ref.empty()) ref = read_stats(o.ref);
  const ImageSet images = ImageSet::open(o.images);
  if (!o.ref_images.empty() && !is_features_file(o.ref_images)) ImageSet::open(o.ref_images);
  if (o.pr && images.size() <= kNeighbours)
    throw UsageError("precision/recall with k=3 need at least 4 images; '" + o.images + "' holds " +
                     std::to_string(images.size()));
  const torch::Device device = select_device(o.device, o.threads);
  ranks.use_device(device);
  Detector detector = Detector::load(o.detector, device);
  const bool progress = !o.quiet && !o.json;
  const SetFeatures gen = measure_set(detector, images, o.batch, o.pr, progress, ranks, ref ? ref->dim() : 0, o.ref);

  SetFeatures ref_set;
  if (!o.ref_images.empty()) {
    ref_set = reference_features(detector, o.ref_images, o.batch, progress, ranks);
    if (ref_set.stats.dim() != gen.stats.dim())
      throw UsageError("'" + o.ref_images + "' has " + std::to_string(ref_set.stats.dim()) +
                       " features per image, the detector gives " + std::to_string(gen.stats.dim()) +
                       "; use the detector the features were made with");
    if (o.pr && ref_set.stats.num_images <= kNeighbours)
      throw UsageError("precision/recall with k=3 need at least 4 reference images; '" + o.ref_images + "' holds " +
                       std::to_string(ref_set.stats.num_images));
  }
  if (!ranks.root()) return;
  if (!ref) ref = ref_set.stats;
  const double fd = frechet_distance(gen.stats, *ref);
  std::optional<PrecisionRecall> pr;
  if (o.pr) pr = precision_recall(ref_set.features.to(device), gen.features.to(device), kNeighbours);

  if (o.json) {
    nlohmann::json j = {{"fd", fd},
                        {"n", gen.stats.num_images},
                        {"ref_n", ref->num_images ? nlohmann::json(ref->num_images) : nlohmann::json()}};
    if (pr) j["precision"] = pr->precision, j["recall"] = pr->recall, j["k"] = kNeighbours;
    std::cout << j.dump() << "\n";
    return;
  }
  char line[64];
  std::snprintf(line, sizeof line, "%.10g", fd);
  std::cout << "fd: " << line << "\nn: " << gen.stats.num_images << "\n";
  if (ref->num_images) std::cout << "ref_n: " << ref->num_images << "\n";
  if (pr) {
    std::snprintf(line, sizeof line, "precision: %.6f\nrecall: %.6f\n", pr->precision, pr->recall);
    std::cout << line;
  }
}

}  // namespace

void add_fid(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "fid", "Fréchet distance (FID with Inception-v3) to reference statistics; --pr adds precision/recall");
  static FidOptions o;
  cmd->add_option("--detector", o.detector, "Feature detector: TorchScript, uint8 [N,C,H,W] -> features [N,D]")
      ->required();
  cmd->add_option("--images", o.images,
                  "Folder of PNGs (recursive) or .npy of uint8 [N,C,H,W] or float samples in [-1,1]")
      ->required();
  cmd->add_option("--ref", o.ref, "Reference statistics (.npz from autoguide ref)");
  cmd->add_option("--ref-images,--ref_images", o.ref_images,
                  "Reference set for --pr (and for FD without --ref): PNG folder, images .npy, or features .npy [N,D]");
  cmd->add_flag("--pr", o.pr, "Also compute precision and recall (k=3) against --ref-images");
  cmd->add_flag("--json", o.json, "Print one JSON object: fd, n, ref_n (and precision, recall, k)");
  cmd->add_option("--batch", o.batch, "Images per detector call")->capture_default_str();
  add_device_options(*cmd, o.device, o.threads, o.dist_timeout);
  cmd->add_flag("--quiet,-q", o.quiet, "No progress on stderr");
  cmd->callback([cmd] { run_as_rank(*cmd, o.dist_timeout, [](const Ranks& ranks) { run_fid(o, ranks); }); });
}

}  // namespace autoguide::cli
