#include "fd_options.hpp"

#include "autoguide/error.hpp"
#include "autoguide/seeds.hpp"
#include "features.hpp"

namespace autoguide::cli {

void add_fd_options(CLI::App& cmd, FdOptions& o) {
  cmd.add_option("--detector", o.detector, "Feature detector (TorchScript, uint8 [N,C,H,W] -> [N,D]): measure each setting's FD");
  cmd.add_option("--ref", o.ref, "Reference statistics for the FD (.npz from autoguide ref)");
  cmd.add_option("--num", o.num, "Samples per setting for the FD: seeds 0..N-1 unless --seeds is given");
}

std::string fd_seeds(const FdOptions& fd, const SamplingOptions& sampling) {
  if (fd.detector.empty() != fd.ref.empty())
    throw UsageError("the Fréchet distance needs both --detector X.pt and --ref STATS.npz");
  if (fd.num != 0 && fd.detector.empty())
    throw UsageError("--num sets the samples per setting for the Fréchet distance: add --detector and --ref");
  if (fd.num < 0 || fd.num == 1) throw UsageError("--num must be at least 2 (feature statistics need 2 images)");
  const std::string text = sampling.seeds_given() || fd.num == 0 ? sampling.seeds : "0-" + std::to_string(fd.num - 1);
  const auto n = static_cast<int64_t>(parse_seed_list(text).size());
  if (sampling.seeds_given() && fd.num != 0 && n != fd.num)
    throw UsageError("--num " + std::to_string(fd.num) + " and --seeds " + sampling.seeds + " (" + std::to_string(n) +
                     " seeds) disagree; give one of them");
  if (!fd.detector.empty() && n < 2)
    throw UsageError("the Fréchet distance needs at least 2 samples per setting; give more --seeds or --num");
  return text;
}

std::optional<FdSetup> open_fd(const FdOptions& o, const torch::Device& device, const std::array<int64_t, 3>& images) {
  if (o.detector.empty()) return std::nullopt;
  FeatureStats ref = read_stats(o.ref);
  FdSetup fd{Detector::load(o.detector, device), std::move(ref), o.ref};
  probe_detector(fd.detector, images, fd.ref.dim(), o.ref);
  return fd;
}

}  // namespace autoguide::cli
