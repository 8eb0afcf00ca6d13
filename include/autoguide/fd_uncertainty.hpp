// How far to trust a Fréchet distance measured on N generated images: a bootstrap interval for one FD, for the
// difference of two settings sampled from the same seeds (paired), and FD-inf (Chong & Forsyth 2020), the FD
// extrapolated to infinitely many images.
//
// The definitions are those of scripts/autoguide_py/fd_bootstrap.py, which the C++ agrees with to rounding:
//  - a resample draws N rows of the features with replacement; its FD is frechet_distance of its
//    feature_stats (unbiased covariance) to the reference, which is held fixed;
//  - se is the standard deviation of the resampled FDs with ddof = 1 (divides by resamples - 1);
//  - the interval is the normal one, value ± z·se with z = Φ⁻¹(0.5 + confidence/2) (1.959964 at 0.95),
//    centred on the FD of all N rows, not on the resamples' mean: a resample repeats about a third of its
//    rows, which shrinks its covariance and raises its FD, so the resamples' percentiles sit too high.
//
// Randomness: everything seeded draws from one LibTorch CPU generator (mt19937, the one torch.Generator uses)
// made with `seed` (only its low 32 bits count, as torch.Generator.manual_seed). Resample r is
// at::randint(N, {N}, gen), int64, so in Python
//   g = torch.Generator().manual_seed(seed); [torch.randint(N, (N,), generator=g) for _ in range(resamples)]
// gives the same rows (bootstrap_indices returns them). Same seed, same features ⇒ same numbers.
// All arithmetic is float64 on the CPU; features may be any floating dtype and device.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "autoguide/metrics.hpp"

namespace autoguide {

// A value with its normal bootstrap interval.
struct FdInterval {
  double value = 0;  // FD of all N rows to the reference (FdDifference: fd_a - fd_b; FdInfinity: the intercept)
  double se = 0;     // std (ddof 1) of the resampled values
  double lo = 0, hi = 0;  // value ∓ z·se
  double confidence = 0;
  int resamples = 0;
  int64_t n = 0;
};

struct FdDifference : FdInterval {
  double fd_a = 0, fd_b = 0;
};

// A least-squares line FD = intercept + slope / size.
struct FdLine {
  double intercept = 0;  // FD-inf: the line at 1/size = 0
  double slope = 0;      // k
};

// value: FD-inf, the intercept of the fit on the features themselves; se: of the intercepts of the fits on
// bootstrap resamples.
struct FdInfinity : FdInterval {
  double k = 0;  // the slope: the FD at N images is about value + k/N
  std::vector<int64_t> sizes;  // the subset sizes of the fit, N/10 .. N
  std::vector<double> fds;     // the FD at each size (the last is the FD of all N rows)
};

// z for a two-sided normal interval: Φ⁻¹(0.5 + confidence/2). Throws FieldError("confidence") outside (0, 1).
double normal_z(double confidence);

// The resample rows the seeded functions below draw: `resamples` int64 tensors [n] in [0, n).
std::vector<torch::Tensor> bootstrap_indices(int64_t n, int resamples, uint64_t seed);

// The FD of features [N,D] to `ref` with its normal bootstrap interval from `resamples` resamples.
// Throws UsageError for N < 2 or a dimension mismatch, FieldError for resamples < 2 or confidence outside (0, 1).
// Cost: resamples + 1 feature_stats and frechet_distance (two D×D symmetric eigendecompositions each, one of them
// the reference's, done once here).
FdInterval bootstrap_fd(const torch::Tensor& features, const FeatureStats& ref, int resamples = 200,
                        double confidence = 0.95, uint64_t seed = 0);
// The same with the resample rows given (each an integer tensor [N] of rows in [0, N)), e.g. to compare with
// another implementation on identical resamples.
FdInterval bootstrap_fd_with_indices(const torch::Tensor& features, const FeatureStats& ref,
                                     const std::vector<torch::Tensor>& indices, double confidence = 0.95);

// FD(a) - FD(b) for two settings sampled from the same seeds (row i of each from seed i, so the same N), and
// its normal interval; each resample takes the same rows of both, so their shared sampling noise cancels.
// Throws UsageError when N differs, as bootstrap_fd otherwise.
FdDifference paired_fd_difference(const torch::Tensor& a, const torch::Tensor& b, const FeatureStats& ref,
                                  int resamples = 200, double confidence = 0.95, uint64_t seed = 0);
FdDifference paired_fd_difference_with_indices(const torch::Tensor& a, const torch::Tensor& b,
                                               const FeatureStats& ref, const std::vector<torch::Tensor>& indices,
                                               double confidence = 0.95);

// Least squares of fds against 1/sizes. Throws UsageError for fewer than 2 points, lengths that differ, a size
// below 1, or all sizes equal.
FdLine fit_fd_line(const std::vector<double>& sizes, const std::vector<double>& fds);

// The 15 subset sizes of FD-inf for n images: floor of 15 evenly spaced values from n/10 to n (as the reference
// code's np.linspace(...).astype(int)); throws UsageError for n < 20.
std::vector<int64_t> fd_infinity_sizes(int64_t n);

// FD-inf (Chong & Forsyth 2020, as mchong6/FID_IS_infinity's calculate_FID_infinity): for each size of
// fd_infinity_sizes(N), the FD of that many rows drawn without replacement (a fresh random permutation per size),
// then fit_fd_line; the value is its intercept. The interval repeats the whole fit (subsets and line) on
// `resamples` bootstrap resamples of the rows and is the normal one around the value, as bootstrap_fd's.
// resamples 0: the value alone (se, lo, hi NaN). Throws UsageError for N < 20 (the smallest subset needs 2 rows),
// FieldError as bootstrap_fd. The estimate is
// only worth reporting for N in the thousands; the caller decides. Cost: 15 × (resamples + 1) FDs; the draws
// (permutations, then per resample its rows and permutations) all come from the one seeded generator.
FdInfinity fd_infinity(const torch::Tensor& features, const FeatureStats& ref, int resamples = 200,
                       double confidence = 0.95, uint64_t seed = 0);

// How a run estimates its FDs: `resamples` bootstrap resamples (0: point estimates only, no interval) at
// `confidence`, every draw from `seed`.
struct FdSettings {
  int resamples = 200;
  double confidence = 0.95;
  uint64_t seed = 0;
};
// Checks resamples (0 or at least 2) and confidence (strictly between 0 and 1); FieldError names the field.
void check_fd_settings(const FdSettings& s);

// Below this many images FD-inf is not reported: its smallest subset (N/10) would hold under 100 images, whose
// FDs are dominated by the bias the line is meant to remove.
constexpr int64_t kFdInfinityMinImages = 1000;

// What a run reports for one setting in one feature space: the FD with its interval and, from
// kFdInfinityMinImages images on, FD-inf with its interval. Without resamples, se/lo/hi are NaN.
struct FdEstimate {
  FdInterval fd;
  std::optional<FdInfinity> infinity;
};
FdEstimate estimate_fd(const torch::Tensor& features, const FeatureStats& ref, const FdSettings& s);

// FD(a) - FD(b) on common seeds with the paired interval (NaN bounds without resamples).
FdDifference fd_difference(const torch::Tensor& a, const torch::Tensor& b, const FeatureStats& ref,
                           const FdSettings& s);

// What a paired difference lets one say, lower FD being better: a is better when the whole interval lies below
// 0, b when it lies above, otherwise (or without an interval) the samples do not resolve the two.
enum class Verdict { FirstBetter, SecondBetter, Unresolved };
Verdict verdict(const FdDifference& d);

}  // namespace autoguide
