// `autoguide fid`: Fréchet distance of an image set to reference statistics, and optionally precision/recall.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "autoguide/error.hpp"
#include "autoguide/format.hpp"
#include "commands.hpp"
#include "device.hpp"
#include "options.hpp"
#include "features.hpp"
#include "ranks.hpp"

namespace autoguide::cli {

namespace {

constexpr int64_t kNeighbours = 3;  // Kynkäänniemi et al. 2019's k for improved precision/recall

void run_fid(const Params& o, const Ranks& ranks) {
  if (o.detectors.size() != 1) throw UsageError("fid measures in one feature space: give one --detector");
  if (o.refs.size() > 1) throw UsageError("fid compares with one set of statistics: give one --ref");
  const std::string& detector_path = o.detectors.front();
  const std::string ref_path = o.refs.empty() ? "" : o.refs.front();
  if (ref_path.empty() && o.ref_images.empty())
    throw UsageError("nothing to compare with: give --ref STATS (from autoguide ref) or --ref-images DIR|FILE.npy");
  if (o.pr && o.ref_images.empty())
    throw UsageError(
        "--pr needs the reference set itself: add --ref-images DIR|FILE.npy (images or ref --features-out)");
  // Cheap checks first: a bad stats file or image set should not cost a pass of the detector.
  std::optional<FeatureStats> ref;
  if (!ref_path.empty()) ref = read_stats(ref_path);
  const ImageSet images = ImageSet::open(o.images);
  if (!o.ref_images.empty() && !is_features_file(o.ref_images)) ImageSet::open(o.ref_images);
  if (o.pr && images.size() <= kNeighbours)
    throw UsageError("precision/recall with k=3 need at least 4 images; '" + o.images + "' holds " +
                     std::to_string(images.size()));
  const torch::Device device = select_device(o.device, o.threads);
  ranks.use_device(device);
  Detector detector = Detector::load(detector_path, device);
  const bool progress = !o.quiet && !o.json;
  SetFeatures ref_set;
  auto check_ref_set = [&](int64_t dim) {
    if (ref_set.stats.dim() != dim)
      throw UsageError("'" + o.ref_images + "' has " + std::to_string(ref_set.stats.dim()) +
                       " features per image, the detector gives " + std::to_string(dim) +
                       "; use the detector the features were made with");
    if (o.pr && ref_set.stats.num_images <= kNeighbours)
      throw UsageError("precision/recall with k=3 need at least 4 reference images; '" + o.ref_images + "' holds " +
                       std::to_string(ref_set.stats.num_images));
  };
  // Reference features from a file cost no detector pass: checked (against the detector's D on two blank
  // images) before the generated set is measured, so that a bad file costs nothing.
  const bool ref_is_features = !o.ref_images.empty() && is_features_file(o.ref_images);
  if (ref_is_features) {
    ref_set = reference_features(detector, o.ref_images, o.batch, progress, ranks);
    const auto& shape = images.image_shape();
    check_ref_set(detector.dim() > 0 ? detector.dim()
                                     : detector(torch::zeros({2, shape[0], shape[1], shape[2]}, torch::kUInt8)).size(1));
  }
  const SetFeatures gen = measure_set(detector, images, {o.batch, o.pr, progress, ref ? ref->dim() : 0, ref_path}, ranks);
  if (!o.ref_images.empty() && !ref_is_features) {
    ref_set = reference_features(detector, o.ref_images, o.batch, progress, ranks);
    check_ref_set(gen.stats.dim());
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
  std::cout << "fd: " << format_number(fd) << "\nn: " << gen.stats.num_images << "\n";
  if (ref->num_images) std::cout << "ref_n: " << ref->num_images << "\n";
  if (pr) {
    char line[64];
    std::snprintf(line, sizeof line, "precision: %.6f\nrecall: %.6f\n", pr->precision, pr->recall);
    std::cout << line;
  }
}

}  // namespace

void add_fid(CLI::App& app) {
  auto* cmd = app.add_subcommand("fid", subcommand_help("fid"));
  static Params o;
  o.batch = 64;
  add_options(*cmd, o);
  cmd->get_option("--detector")->required();
  cmd->get_option("--images")->required();
  cmd->footer(
      "Examples:\n"
      "  autoguide fid --detector inception.pt --images out/ag --ref imagenet-512.npz\n"
      "  autoguide fid --detector det.pt --images out/ag --ref-images ref_features.npy --pr --json");
  cmd->callback([cmd] { run_as_rank(*cmd, o.dist_timeout, [](const Ranks& ranks) { run_fid(o, ranks); }); });
}

}  // namespace autoguide::cli
