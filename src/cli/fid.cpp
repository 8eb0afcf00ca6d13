// `autoguide fid`: Fréchet distance of an image set to reference statistics with its bootstrap interval (and
// FD-inf from 1,000 images on), optionally precision/recall; or, with --paired, the difference of two sets made
// from the same seeds.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "autoguide/error.hpp"
#include "autoguide/fd_uncertainty.hpp"
#include "autoguide/format.hpp"
#include "commands.hpp"
#include "device.hpp"
#include "fd_options.hpp"
#include "fd_report.hpp"
#include "features.hpp"
#include "atomic_file.hpp"
#include "npy.hpp"
#include "options.hpp"
#include "ranks.hpp"

namespace autoguide::cli {

namespace {

constexpr int64_t kNeighbours = 3;  // Kynkäänniemi et al. 2019's k for improved precision/recall

// One `autoguide fid`: the generated set(s), the reference, the detector when some set holds images.
class FidRun {
 public:
  FidRun(const Params& o, const Ranks& ranks) : o(o), ranks(ranks) {}
  void run();

 private:
  std::vector<std::string> generated() const { return o.paired.empty() ? std::vector<std::string>{o.images} : o.paired; }
  void check_options() const;
  Detector& detector();
  int64_t detector_dim(const std::array<int64_t, 3>& shape);
  void check_ref_set(int64_t dim) const;
  SetFeatures measure(const std::string& path);
  // Where the reference statistics come from, for messages.
  std::string ref_from() const { return o.refs.empty() ? o.ref_images : o.refs.front(); }
  void report_one(const SetFeatures& gen) const;
  void report_paired(const std::vector<SetFeatures>& sets) const;

  const Params& o;
  const Ranks& ranks;
  std::optional<torch::Device> device;
  std::optional<Detector> det;
  std::optional<FeatureStats> ref;  // --ref, else the statistics of --ref-images
  SetFeatures ref_set;
};

void FidRun::check_options() const {
  if (o.detectors.size() > 1) throw UsageError("fid measures in one feature space: give one --detector");
  if (o.refs.size() > 1) throw UsageError("fid compares with one set of statistics: give one --ref");
  if (!o.paired.empty() && o.paired.size() != 2)
    throw UsageError("--paired takes two sets made from the same seeds: --paired A,B (got " +
                     std::to_string(o.paired.size()) + ")");
  if (!o.paired.empty() && !o.images.empty())
    throw UsageError("give either --images (one set) or --paired A,B (two sets), not both");
  if (o.paired.empty() && o.images.empty()) throw UsageError("nothing to measure: give --images PATH or --paired A,B");
  if (!o.paired.empty() && (o.pr || !o.features_out.empty()))
    throw UsageError("--pr and --features-out measure one set: use them with --images, not --paired");
  if (o.refs.empty() && o.ref_images.empty())
    throw UsageError("nothing to compare with: give --ref STATS (from autoguide ref) or --ref-images DIR|FILE.npy");
  if (o.pr && o.ref_images.empty())
    throw UsageError(
        "--pr needs the reference set itself: add --ref-images DIR|FILE.npy (images or ref --features-out)");
  bool images = !o.ref_images.empty() && !is_features_file(o.ref_images);
  for (const auto& g : generated()) images |= !is_features_file(g);
  if (images && o.detectors.empty())
    throw UsageError("measuring images needs a detector: add --detector X.pt (features .npy files need none)");
}

Detector& FidRun::detector() {
  if (!det) {
    device = select_device(o.device, o.threads);
    ranks.use_device(*device);
    det.emplace(Detector::load(o.detectors.front(), *device));
  }
  return *det;
}

// The detector's D, from two blank images of the set's shape where it does not say.
int64_t FidRun::detector_dim(const std::array<int64_t, 3>& shape) {
  Detector& d = detector();
  return d.dim() > 0 ? d.dim() : d(torch::zeros({2, shape[0], shape[1], shape[2]}, torch::kUInt8)).size(1);
}

void FidRun::check_ref_set(int64_t dim) const {
  if (ref_set.stats.dim() != dim)
    throw UsageError("'" + o.ref_images + "' has " + std::to_string(ref_set.stats.dim()) +
                     " features per image, the detector gives " + std::to_string(dim) +
                     "; use the detector the features were made with");
  if (o.pr && ref_set.stats.num_images <= kNeighbours)
    throw UsageError("precision/recall with k=3 need at least 4 reference images; '" + o.ref_images + "' holds " +
                     std::to_string(ref_set.stats.num_images));
}

// A generated set's features (on rank 0) and statistics: read from a features file, or measured.
SetFeatures FidRun::measure(const std::string& path) {
  const bool progress = !o.quiet && !o.json;
  if (is_features_file(path)) {
    SetFeatures f = read_features(path);
    if (ref && f.stats.dim() != ref->dim())
      throw UsageError("'" + path + "' has " + std::to_string(f.stats.dim()) + " features per image, but " +
                       ref_from() + " has " + std::to_string(ref->dim()) + "; compare features of one detector");
    return f;
  }
  return measure_set(detector(), ImageSet::open(path), {o.batch, true, progress, ref ? ref->dim() : 0, ref_from()},
                     ranks);
}

void FidRun::report_one(const SetFeatures& gen) const {
  if (o.pr && gen.stats.num_images <= kNeighbours)
    throw UsageError("precision/recall with k=3 need at least 4 images; '" + o.images + "' holds " +
                     std::to_string(gen.stats.num_images));
  const FdEstimate e = estimate_fd(gen.features, *ref, fd_settings(o));
  std::optional<PrecisionRecall> pr;
  if (o.pr) pr = precision_recall(ref_set.features.to(*device), gen.features.to(*device), kNeighbours);
  if (!o.features_out.empty()) write_npy(o.features_out, gen.features);
  const nlohmann::json ref_n = ref->num_images ? nlohmann::json(ref->num_images) : nlohmann::json();
  if (o.json) {
    nlohmann::json j = {{"fd", e.fd.value}, {"n", gen.stats.num_images}, {"ref_n", ref_n}, {"estimate", estimate_json(e)}};
    if (pr) j["precision"] = pr->precision, j["recall"] = pr->recall, j["k"] = kNeighbours;
    std::cout << j.dump() << "\n";
    return;
  }
  std::cout << "fd: " << format_number(e.fd.value) << "\n";
  if (e.fd.resamples) std::cout << "fd_interval: " << interval_text(e.fd) << " (" << how_estimated(e.fd) << ")\n";
  if (e.infinity) std::cout << "fd_inf: " << interval_text(*e.infinity) << "\n";
  std::cout << "n: " << gen.stats.num_images << "\n";
  if (ref->num_images) std::cout << "ref_n: " << ref->num_images << "\n";
  if (pr) {
    char line[64];
    std::snprintf(line, sizeof line, "precision: %.6f\nrecall: %.6f\n", pr->precision, pr->recall);
    std::cout << line;
  }
}

void FidRun::report_paired(const std::vector<SetFeatures>& sets) const {
  const FdSettings s = fd_settings(o);
  const FdDifference d = fd_difference(sets[0].features, sets[1].features, *ref, s);
  const FdEstimate a = estimate_fd(sets[0].features, *ref, s), b = estimate_fd(sets[1].features, *ref, s);
  const std::string& pa = o.paired[0];
  const std::string& pb = o.paired[1];
  if (o.json) {
    std::cout << nlohmann::json({{"a", estimate_json(a)},
                                 {"b", estimate_json(b)},
                                 {"difference", difference_json(d, pa, pb)},
                                 {"ref_n", ref->num_images ? nlohmann::json(ref->num_images) : nlohmann::json()}})
                     .dump()
              << "\n";
    return;
  }
  std::cout << "fd_a: " << interval_text(a.fd) << "  " << pa << "\nfd_b: " << interval_text(b.fd) << "  " << pb
            << "\ndifference: " << interval_text(d) << " (fd_a - fd_b on " << d.n << " common seeds"
            << (d.resamples ? ", " + how_estimated(d) : "") << ")\nverdict: " << verdict_text(d, pa, pb) << "\n";
}

void FidRun::run() {
  check_options();
  // Cheap checks first: a bad stats file or image set should not cost a pass of the detector.
  if (!o.refs.empty()) ref = read_stats(o.refs.front());
  if (!o.features_out.empty() && file_exists(o.features_out) && !o.overwrite)
    throw UsageError(o.features_out + " already exists; add --overwrite to replace it");
  std::optional<std::array<int64_t, 3>> shape;  // of the first set of images, to learn the detector's D
  for (const auto& g : generated()) {
    if (is_features_file(g)) continue;
    const ImageSet set = ImageSet::open(g);
    if (!shape) shape = set.image_shape();
    if (o.pr && set.size() <= kNeighbours)
      throw UsageError("precision/recall with k=3 need at least 4 images; '" + g + "' holds " + std::to_string(set.size()));
  }
  const bool ref_is_features = !o.ref_images.empty() && is_features_file(o.ref_images);
  if (!o.ref_images.empty() && !ref_is_features) ImageSet::open(o.ref_images);
  // Reference features from a file cost no detector pass: checked before the generated sets are measured.
  if (ref_is_features) {
    ref_set = read_features(o.ref_images);
    if (shape) check_ref_set(detector_dim(*shape));
    if (!ref) ref = ref_set.stats;
  }
  std::vector<SetFeatures> sets;
  for (const auto& g : generated()) sets.push_back(measure(g));
  if (!o.ref_images.empty() && !ref_is_features) {
    ref_set = measure_set(detector(), ImageSet::open(o.ref_images), {o.batch, true, !o.quiet && !o.json}, ranks);
    check_ref_set(sets.front().stats.dim());
  }
  if (ref_is_features && !shape) check_ref_set(sets.front().stats.dim());
  if (!ranks.root()) return;
  if (!ref) ref = ref_set.stats;
  if (!device) device = torch::Device(torch::kCPU);
  if (o.paired.empty())
    report_one(sets.front());
  else
    report_paired(sets);
}

}  // namespace

void add_fid(CLI::App& app) {
  auto* cmd = app.add_subcommand("fid", subcommand_help("fid"));
  static Params o;
  o.batch = 64;
  add_options(*cmd, o);
  cmd->footer(
      "Examples:\n"
      "  autoguide fid --detector inception.pt --images out/ag --ref imagenet-512.npz\n"
      "  autoguide fid --detector det.pt --images out/ag --ref-images ref_features.npy --pr --json\n"
      "  autoguide fid --detector det.pt --images out/ag --ref ref.npz --features-out ag.npy\n"
      "  autoguide fid --paired ag.npy,cfg.npy --ref ref.npz");
  cmd->callback([cmd] { run_as_rank(*cmd, o.dist_timeout, [](const Ranks& ranks) { FidRun(o, ranks).run(); }); });
}

}  // namespace autoguide::cli
