#include "autoguide/fd_uncertainty.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "autoguide/error.hpp"

namespace autoguide {

namespace {

// The FD to the reference of the given rows of x.
double fd_of_rows(const FrechetFrom& to_ref, const torch::Tensor& x, const torch::Tensor& rows) {
  return to_ref(feature_stats(x.index_select(0, rows)));
}

// Features as float64 CPU [N,D], checked against the reference.
torch::Tensor checked_features(const torch::Tensor& features, const FrechetFrom& ref, const char* what) {
  if (!features.defined() || features.dim() != 2)
    throw UsageError(std::string(what) + " must be a feature matrix [N,D]");
  if (!features.is_floating_point()) throw UsageError(std::string(what) + " must be floating point");
  if (features.size(1) != ref.dim())
    throw UsageError("feature dimensions differ: " + std::to_string(features.size(1)) + " vs " +
                     std::to_string(ref.dim()) + " (statistics from different detectors?)");
  if (features.size(0) < 2)
    throw UsageError("an FD interval needs at least 2 images, got " + std::to_string(features.size(0)));
  return features.to(torch::kCPU, torch::kFloat64).contiguous();
}

void check_resamples(int64_t resamples) {
  if (resamples < 2)
    throw FieldError("resamples", "the bootstrap needs at least 2 resamples, got " + std::to_string(resamples));
}

torch::Tensor checked_rows(const torch::Tensor& rows, int64_t n) {
  if (!rows.defined() || rows.dim() != 1 || rows.size(0) != n || rows.is_floating_point())
    throw UsageError("each resample must be an integer tensor of " + std::to_string(n) + " rows");
  auto r = rows.to(torch::kCPU, torch::kInt64);
  if (n > 0 && (r.min().item<int64_t>() < 0 || r.max().item<int64_t>() >= n))
    throw UsageError("resample rows must lie in [0, " + std::to_string(n) + ")");
  return r;
}

double sample_std(const std::vector<double>& v) {  // ddof = 1, as np.std(..., ddof=1)
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

at::Generator seeded_generator(uint64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>();
  g.set_current_seed(seed);
  return g;
}

torch::Tensor draw_rows(int64_t n, at::Generator& gen) {
  return at::randint(n, {n}, gen, torch::TensorOptions().dtype(torch::kInt64));
}

// The resampled values of `stat`, one per resample that `next_rows(r)` gives.
std::vector<double> resampled(int resamples, const std::function<torch::Tensor(int)>& next_rows,
                              const std::function<double(const torch::Tensor&)>& stat) {
  std::vector<double> values;
  values.reserve(static_cast<size_t>(resamples));
  for (int r = 0; r < resamples; ++r) values.push_back(stat(next_rows(r)));
  return values;
}

// A value without an interval (no resamples).
FdInterval point_only(double value, double confidence, int64_t n) {
  const double nan = std::nan("");
  FdInterval out;
  out.value = value;
  out.se = out.lo = out.hi = nan;
  out.confidence = confidence;
  out.n = n;
  return out;
}

// The normal interval from the resampled values; without them, the value alone.
FdInterval interval(double value, const std::vector<double>& values, double confidence, int64_t n) {
  if (values.empty()) return point_only(value, confidence, n);
  FdInterval out;
  out.value = value;
  out.se = sample_std(values);
  const double half = normal_z(confidence) * out.se;
  out.lo = value - half;
  out.hi = value + half;
  out.confidence = confidence;
  out.resamples = static_cast<int>(values.size());
  out.n = n;
  return out;
}

// resamples 0: the value alone (callers check the count).
FdInterval bootstrap_core(const torch::Tensor& features, const FeatureStats& ref, int resamples, double confidence,
                          const std::function<torch::Tensor(int)>& next_rows) {
  normal_z(confidence);  // refuse a bad confidence before the work
  const FrechetFrom to_ref(ref);
  const auto x = checked_features(features, to_ref, "features");
  const int64_t n = x.size(0);
  const double value = to_ref(feature_stats(x));
  auto values = resampled(resamples, next_rows,
                          [&](const torch::Tensor& rows) { return fd_of_rows(to_ref, x, checked_rows(rows, n)); });
  return interval(value, values, confidence, n);
}

FdDifference difference_core(const torch::Tensor& a, const torch::Tensor& b, const FeatureStats& ref,
                             int resamples, double confidence, const std::function<torch::Tensor(int)>& next_rows) {
  normal_z(confidence);
  const FrechetFrom to_ref(ref);
  const auto xa = checked_features(a, to_ref, "features of setting a");
  const auto xb = checked_features(b, to_ref, "features of setting b");
  const int64_t n = xa.size(0);
  if (xb.size(0) != n)
    throw UsageError("paired settings need the same seeds: " + std::to_string(n) + " and " +
                     std::to_string(xb.size(0)) + " samples");
  FdDifference out;
  out.fd_a = to_ref(feature_stats(xa));
  out.fd_b = to_ref(feature_stats(xb));
  auto values = resampled(resamples, next_rows, [&](const torch::Tensor& rows) {
    const auto r = checked_rows(rows, n);
    return fd_of_rows(to_ref, xa, r) - fd_of_rows(to_ref, xb, r);
  });
  static_cast<FdInterval&>(out) = interval(out.fd_a - out.fd_b, values, confidence, n);
  return out;
}

std::function<torch::Tensor(int)> given_rows(const std::vector<torch::Tensor>& indices) {
  return [&indices](int r) { return indices[static_cast<size_t>(r)]; };
}

// The FD at each size of rows drawn without replacement from x (a permutation per size), and the line through them.
FdLine fit_on(const torch::Tensor& x, const std::vector<int64_t>& sizes, const FrechetFrom& to_ref,
              at::Generator& gen, std::vector<double>* fds_out) {
  std::vector<double> fds, xs;
  for (int64_t size : sizes) {
    auto perm = at::randperm(x.size(0), gen, torch::TensorOptions().dtype(torch::kInt64));
    fds.push_back(fd_of_rows(to_ref, x, perm.narrow(0, 0, size)));
    xs.push_back(static_cast<double>(size));
  }
  const auto line = fit_fd_line(xs, fds);
  if (fds_out) *fds_out = std::move(fds);
  return line;
}

}  // namespace

double normal_z(double confidence) {
  if (!(confidence > 0 && confidence < 1))
    throw FieldError("confidence", "the confidence must lie strictly between 0 and 1, got " +
                                       std::to_string(confidence));
  const double p = 0.5 + confidence / 2;
  // Acklam's rational approximation of the normal quantile (relative error 1.15e-9), then two Halley steps on
  // Φ(x) - p with Φ from erfc, which bring it to double precision.
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  double x;
  if (p > 1 - 0.02425) {
    const double q = std::sqrt(-2 * std::log1p(-p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }
  const double sqrt2pi = 2.5066282746310002;  // sqrt(2 pi)
  for (int i = 0; i < 2; ++i) {
    // 1 - p and the upper tail 0.5·erfc(x/√2) keep their digits where p is close to 1.
    const double e = (1 - p) - 0.5 * std::erfc(x / std::sqrt(2.0));
    const double u = e * sqrt2pi * std::exp(x * x / 2);
    x = x - u / (1 + x * u / 2);
  }
  return x;
}

std::vector<torch::Tensor> bootstrap_indices(int64_t n, int resamples, uint64_t seed) {
  auto gen = seeded_generator(seed);
  std::vector<torch::Tensor> out;
  for (int r = 0; r < resamples; ++r) out.push_back(draw_rows(n, gen));
  return out;
}

FdInterval bootstrap_fd(const torch::Tensor& features, const FeatureStats& ref, int resamples, double confidence,
                        uint64_t seed) {
  check_resamples(resamples);
  auto gen = seeded_generator(seed);
  const int64_t n = features.dim() == 2 ? features.size(0) : 0;
  return bootstrap_core(features, ref, resamples, confidence, [&](int) { return draw_rows(n, gen); });
}

FdInterval bootstrap_fd_with_indices(const torch::Tensor& features, const FeatureStats& ref,
                                     const std::vector<torch::Tensor>& indices, double confidence) {
  check_resamples(static_cast<int64_t>(indices.size()));
  return bootstrap_core(features, ref, static_cast<int>(indices.size()), confidence, given_rows(indices));
}

FdDifference paired_fd_difference(const torch::Tensor& a, const torch::Tensor& b, const FeatureStats& ref,
                                  int resamples, double confidence, uint64_t seed) {
  check_resamples(resamples);
  auto gen = seeded_generator(seed);
  const int64_t n = a.dim() == 2 ? a.size(0) : 0;
  return difference_core(a, b, ref, resamples, confidence, [&](int) { return draw_rows(n, gen); });
}

FdDifference paired_fd_difference_with_indices(const torch::Tensor& a, const torch::Tensor& b,
                                               const FeatureStats& ref, const std::vector<torch::Tensor>& indices,
                                               double confidence) {
  check_resamples(static_cast<int64_t>(indices.size()));
  return difference_core(a, b, ref, static_cast<int>(indices.size()), confidence, given_rows(indices));
}

FdLine fit_fd_line(const std::vector<double>& sizes, const std::vector<double>& fds) {
  if (sizes.size() != fds.size()) throw UsageError("fit_fd_line: sizes and FDs differ in length");
  if (sizes.size() < 2) throw UsageError("fit_fd_line needs at least 2 points");
  const double m = static_cast<double>(sizes.size());
  double xm = 0, ym = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (!(sizes[i] >= 1)) throw UsageError("fit_fd_line: subset sizes must be at least 1");
    xm += 1 / sizes[i];
    ym += fds[i];
  }
  xm /= m;
  ym /= m;
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const double dx = 1 / sizes[i] - xm;
    sxy += dx * (fds[i] - ym);
    sxx += dx * dx;
  }
  if (!(sxx > 0)) throw UsageError("fit_fd_line: all subset sizes are equal; a line needs two");
  FdLine line;
  line.slope = sxy / sxx;
  line.intercept = ym - line.slope * xm;
  return line;
}

std::vector<int64_t> fd_infinity_sizes(int64_t n) {
  if (n < 20) throw UsageError("FD-inf needs at least 20 images (its smallest subset is N/10), got " + std::to_string(n));
  constexpr int kPoints = 15;
  const double start = static_cast<double>(n) / 10, stop = static_cast<double>(n);
  const double step = (stop - start) / (kPoints - 1);
  std::vector<int64_t> sizes;
  for (int i = 0; i < kPoints; ++i)
    sizes.push_back(i == kPoints - 1 ? n : static_cast<int64_t>(std::floor(start + i * step)));
  return sizes;
}

FdInfinity fd_infinity(const torch::Tensor& features, const FeatureStats& ref, int resamples, double confidence,
                       uint64_t seed) {
  if (resamples != 0) check_resamples(resamples);
  normal_z(confidence);
  const FrechetFrom to_ref(ref);
  const auto x = checked_features(features, to_ref, "features");
  const int64_t n = x.size(0);
  FdInfinity out;
  out.sizes = fd_infinity_sizes(n);
  auto gen = seeded_generator(seed);
  const auto line = fit_on(x, out.sizes, to_ref, gen, &out.fds);
  auto values = resampled(resamples, [&](int) { return draw_rows(n, gen); }, [&](const torch::Tensor& rows) {
    return fit_on(x.index_select(0, rows), out.sizes, to_ref, gen, nullptr).intercept;
  });
  static_cast<FdInterval&>(out) = interval(line.intercept, values, confidence, n);
  out.k = line.slope;
  return out;
}

void check_fd_settings(const FdSettings& s) {
  if (s.resamples != 0) check_resamples(s.resamples);
  normal_z(s.confidence);
}

FdEstimate estimate_fd(const torch::Tensor& features, const FeatureStats& ref, const FdSettings& s) {
  check_fd_settings(s);
  auto gen = seeded_generator(s.seed);
  const int64_t n = features.dim() == 2 ? features.size(0) : 0;
  FdEstimate out;
  out.fd = bootstrap_core(features, ref, s.resamples, s.confidence, [&](int) { return draw_rows(n, gen); });
  if (out.fd.n >= kFdInfinityMinImages) out.infinity = fd_infinity(features, ref, s.resamples, s.confidence, s.seed);
  return out;
}

FdDifference fd_difference(const torch::Tensor& a, const torch::Tensor& b, const FeatureStats& ref,
                           const FdSettings& s) {
  check_fd_settings(s);
  auto gen = seeded_generator(s.seed);
  const int64_t n = a.dim() == 2 ? a.size(0) : 0;
  return difference_core(a, b, ref, s.resamples, s.confidence, [&](int) { return draw_rows(n, gen); });
}

Verdict verdict(const FdDifference& d) {
  if (d.hi < 0) return Verdict::FirstBetter;  // NaN bounds compare false: unresolved
  if (d.lo > 0) return Verdict::SecondBetter;
  return Verdict::Unresolved;
}

}  // namespace autoguide
