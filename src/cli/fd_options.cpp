#include "fd_options.hpp"

#include <filesystem>
#include <set>

#include "autoguide/error.hpp"
#include "autoguide/seeds.hpp"
#include "features.hpp"

namespace autoguide::cli {

void check_spaces(const Params& fd) {
  if (fd.detectors.empty() != fd.refs.empty())
    throw UsageError("the Fréchet distance needs both --detector X.pt and --ref STATS.npz");
  if (fd.detectors.size() != fd.refs.size())
    throw UsageError("each --detector needs its --ref, in the same order (got " + std::to_string(fd.detectors.size()) +
                     " detectors and " + std::to_string(fd.refs.size()) + " refs)");
  for (size_t k = 0; k < fd.detectors.size(); ++k)
    for (size_t j = 0; j < k; ++j)
      if (fd.detectors[j] == fd.detectors[k]) throw UsageError("--detector lists " + fd.detectors[k] + " twice");
}

std::string fd_seeds(const Params& fd) {
  check_spaces(fd);
  if (fd.num != 0 && fd.detectors.empty())
    throw UsageError("--num sets the samples per setting for the Fréchet distance: add --detector and --ref");
  if (fd.num < 0 || fd.num == 1) throw UsageError("--num must be at least 2 (feature statistics need 2 images)");
  const std::string text = fd.given("--seeds") || fd.num == 0 ? fd.seeds : "0-" + std::to_string(fd.num - 1);
  const auto n = static_cast<int64_t>(parse_seed_list(text).size());
  if (fd.given("--seeds") && fd.num != 0 && n != fd.num)
    throw UsageError("--num " + std::to_string(fd.num) + " and --seeds " + fd.seeds + " (" + std::to_string(n) +
                     " seeds) disagree; give one of them");
  if (!fd.detectors.empty() && n < 2)
    throw UsageError("the Fréchet distance needs at least 2 samples per setting; give more --seeds or --num");
  return text;
}

FdSettings fd_settings(const Params& o) {
  FdSettings s;
  s.resamples = o.resamples, s.confidence = o.confidence;
  return s;
}

FdRun open_fd(const Params& o, const torch::Device& device, const std::array<int64_t, 3>& images,
              const std::string& spill_dir) {
  std::set<std::string> stems;
  bool clash = false;
  for (const auto& d : o.detectors) clash |= !stems.insert(std::filesystem::path(d).stem().string()).second;
  FdRun run{{}, fd_settings(o), FeatureStore(spill_dir, o.features_memory << 20)};
  for (size_t k = 0; k < o.detectors.size(); ++k) {
    const std::string& d = o.detectors[k];
    FeatureStats ref = read_stats(o.refs[k]);
    run.spaces.push_back({clash ? d : std::filesystem::path(d).stem().string(), Detector::load(d, device),
                          std::move(ref), o.refs[k]});
    probe_detector(run.spaces.back().detector, images, run.spaces.back().ref.dim(), o.refs[k]);
  }
  return run;
}

FdDifference FdRun::difference(size_t k, const std::string& a, const std::string& b) const {
  return fd_difference(features.get(a), features.get(b), spaces[k].ref, settings);
}

std::string fd_label(const std::vector<FdSpace>& spaces, size_t k) {
  return spaces.size() == 1 ? "fd" : "fd[" + spaces[k].name + "]";
}

}  // namespace autoguide::cli
