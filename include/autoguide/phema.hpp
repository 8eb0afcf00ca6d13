// Post-hoc EMA from a snapshot set (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of
// Diffusion Models", Sec. 3.2 and App. C.3): a training run keeps power-function EMAs at two relative stds
// and saves them as snapshots; any other std at a snapshot's training length is then the average
// theta = sum_k c_k theta_k, with c solving a small least-squares problem between the EMA profiles.
// The set file (scripts/export_phema_set.py, docs/model_format.md) holds the network once and every
// snapshot's weights; a new length costs one pass of multiply-adds.
#pragma once
#include <torch/script.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autoguide/model.hpp"

namespace autoguide {

// A power-function EMA profile: the average after `nimg` training images with relative std `std`.
struct EmaProfile {
  double nimg = 0;
  double std = 0;
};

// The widest normalisable profile (gamma -> -1): sigma_rel < 12^-1/2.
inline const double kEmaStdLimit = 0.28867513459481287;
// The lengths a set is trusted to represent: EDM2's own reconstructions span 0.010 to 0.250.
inline constexpr double kMinEmaStd = 0.010, kMaxEmaStd = 0.250;

// Refuses a std outside [kMinEmaStd, kMaxEmaStd]: FieldError naming `field`.
void check_ema_std(double std, const std::string& field);

// gamma of a relative std: the largest real root of Eq. 5 rearranged (EDM2 Algorithm 2).
double ema_exponent(double std);

// <p_a, p_b>: the integral of the two normalised profiles' product (App. C.3, EDM2 Algorithm 3).
double profile_dot(const EmaProfile& a, const EmaProfile& b);

// Coefficients of the stored profiles (in their order) whose average best matches `wanted`, normalised to
// sum to 1 (EDM2 Algorithm 3, in float64), and the fit's relative L2 residual ||sum c_k p_k - p|| / ||p||.
struct PosthocFit {
  std::vector<double> coefficients;
  double residual = 0;
};
PosthocFit solve_posthoc(const std::vector<EmaProfile>& stored, const EmaProfile& wanted);

// What to build: the std, the training length in kimg (default: the set's last), and whether the sums
// are stored in the snapshots' dtype (EDM2's reconstruct_phema.py: fp16) or kept in float32.
struct EmaRequest {
  double std = 0;
  std::optional<int64_t> kimg;
  bool keep_fp32 = false;
};

class LazyArchive;

// The default of how much of a set may stay resident (--ema-memory): 8 GiB.
inline constexpr int64_t kDefaultEmaMemory = int64_t{8192} << 20;

class SnapshotSet {
 public:
  // Loads and checks a set (one architecture, every profile at every length, weights that fit the net).
  // A set file of at most `resident_bytes` is loaded whole onto `device`; a larger one is streamed: only its
  // network and metadata are read now, and each build reads the snapshots from the file one at a time.
  // Throws UsageError naming the file and the fix.
  static SnapshotSet load(const std::string& path, const torch::Device& device,
                          int64_t resident_bytes = kDefaultEmaMemory);

  // The coefficients of a request, checked: FieldError naming `field` for a std outside
  // [kMinEmaStd, kMaxEmaStd] or a length that is no snapshot's.
  PosthocEma plan(const EmaRequest& request, const std::string& field) const;

  // The net of a plan: each parameter accumulated in float32 as theta += theta_k * c_k over the snapshots in
  // order, then stored in the snapshot's dtype unless kept in fp32; buffers from the last snapshot used.
  Denoiser build(const PosthocEma& plan, NetPrecision precision = NetPrecision::Auto, bool fast = false) const;

  // The nets of several plans in one pass over the snapshots, each accumulated exactly as build() does (the
  // same operations in the same order, so the same bits). A streamed set reads each snapshot once, so peak
  // memory is the plans' float32 sums plus one snapshot (EDM2's reconstruct_phema.py --batch).
  std::vector<Denoiser> build_all(const std::vector<PosthocEma>& plans, NetPrecision precision = NetPrecision::Auto,
                                  bool fast = false) const;

  // Whether the snapshots stay in the file (the set exceeded the resident limit) rather than in memory.
  bool streamed() const { return lazy_ != nullptr; }

  const ModelInfo& info() const { return info_; }
  const std::vector<EmaProfile>& profiles() const { return profiles_; }
  const std::string& path() const { return path_; }
  const std::string& file_sha256() const { return sha256_; }

 private:
  SnapshotSet() = default;
  torch::jit::Module module_;
  std::vector<c10::Dict<std::string, at::Tensor>> weights_;  // per snapshot, by state-dict name
  std::shared_ptr<LazyArchive> lazy_;  // streamed: weights_' bytes stay in the file until a build reads them
  std::vector<EmaProfile> profiles_;
  ModelInfo info_;
  std::string path_, sha256_;
  torch::Device device_{torch::kCPU};
};

// Whether a file is a snapshot set (reads its metadata record only).
bool is_snapshot_set(const std::string& path);

}  // namespace autoguide
