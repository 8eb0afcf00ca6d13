#include "autoguide/metrics.hpp"

#include <algorithm>
#include <cmath>

#include "autoguide/error.hpp"
#include "npz.hpp"

namespace autoguide {

namespace {

constexpr auto kF64 = torch::kFloat64;

torch::Tensor symmetric(const torch::Tensor& m) { return (m + m.transpose(0, 1)) * 0.5; }

// Rows per block so that one block of distances stays near 128 MiB of float64.
int64_t block_rows(int64_t columns) { return std::max<int64_t>(1, (int64_t(1) << 24) / std::max<int64_t>(columns, 1)); }

// Squared Euclidean distances [a,b], clamped at 0 where the expansion's rounding dips below.
torch::Tensor squared_distances(const torch::Tensor& a, const torch::Tensor& a_sq, const torch::Tensor& b,
                                const torch::Tensor& b_sq) {
  return (a_sq.unsqueeze(1) + b_sq.unsqueeze(0) - 2 * torch::mm(a, b.t())).clamp_min(0);
}

// Squared radius of each sample's k-NN ball: the k-th smallest distance to the other samples of `x`.
torch::Tensor knn_radii_sq(const torch::Tensor& x, const torch::Tensor& x_sq, int64_t k) {
  const int64_t n = x.size(0), rows = block_rows(n);
  std::vector<torch::Tensor> radii;
  for (int64_t start = 0; start < n; start += rows) {
    const int64_t m = std::min(rows, n - start);
    auto d = squared_distances(x.narrow(0, start, m), x_sq.narrow(0, start, m), x, x_sq);
    // Exclude each sample itself by index, not by value: exact duplicates still count as neighbours.
    d.narrow(1, start, m).diagonal().fill_(std::numeric_limits<double>::infinity());
    radii.push_back(std::get<0>(d.topk(k, 1, /*largest=*/false, /*sorted=*/true)).select(1, k - 1));
  }
  return torch::cat(radii);
}

// Share of `queries` that lie within at least one ball (centres `points`, squared radii `radii_sq`).
double coverage(const torch::Tensor& queries, const torch::Tensor& q_sq, const torch::Tensor& points,
                const torch::Tensor& p_sq, const torch::Tensor& radii_sq) {
  const int64_t n = queries.size(0), rows = block_rows(points.size(0));
  int64_t inside = 0;
  for (int64_t start = 0; start < n; start += rows) {
    const int64_t m = std::min(rows, n - start);
    auto d = squared_distances(queries.narrow(0, start, m), q_sq.narrow(0, start, m), points, p_sq);
    inside += (d <= radii_sq.unsqueeze(0)).any(1).sum().item<int64_t>();
  }
  return static_cast<double>(inside) / static_cast<double>(n);
}

}  // namespace

void StatsAccumulator::add(const torch::Tensor& features) {
  TORCH_CHECK(features.dim() == 2, "StatsAccumulator::add expects features [n,D]");
  const int64_t m = features.size(0);
  if (m == 0) return;
  auto x = features.to(kF64);
  if (n_ == 0) {
    mean_ = torch::zeros({x.size(1)}, x.options());
    scatter_ = torch::zeros({x.size(1), x.size(1)}, x.options());
  }
  TORCH_CHECK(x.size(1) == mean_.size(0), "StatsAccumulator::add: feature dimension changed");
  auto batch_mean = x.mean(0);
  auto centred = x - batch_mean;
  auto delta = batch_mean - mean_.to(x.device());
  const double n = static_cast<double>(n_), total = static_cast<double>(n_ + m);
  mean_ = mean_.to(x.device()) + delta * (static_cast<double>(m) / total);
  scatter_ = scatter_.to(x.device()) + torch::mm(centred.t(), centred) + torch::outer(delta, delta) * (n * m / total);
  n_ += m;
}

FeatureStats StatsAccumulator::finish() const {
  if (n_ < 2) throw UsageError("feature statistics need at least 2 images, got " + std::to_string(n_));
  return {mean_.cpu(), symmetric(scatter_ / static_cast<double>(n_ - 1)).cpu(), n_};
}

FeatureStats feature_stats(const torch::Tensor& features) {
  StatsAccumulator acc;
  acc.add(features);
  return acc.finish();
}

FrechetFrom::FrechetFrom(const FeatureStats& a) {
  const auto s1 = symmetric(a.sigma.to(torch::kCPU, kF64));
  mu_ = a.mu.to(torch::kCPU, kF64);
  trace_ = s1.trace().item<double>();
  // S1 = V diag(l) V^T, so S1^1/2 S2 S1^1/2 = V [diag(r) (V^T S2 V) diag(r)] V^T with r = sqrt(l): the bracket
  // has the same eigenvalues and costs one product fewer.
  auto [l, v] = torch::linalg_eigh(s1);
  v_ = v;
  r_ = l.clamp_min(0).sqrt();
}

double FrechetFrom::operator()(const FeatureStats& b) const {
  if (dim() != b.dim())
    throw UsageError("feature dimensions differ: " + std::to_string(dim()) + " vs " + std::to_string(b.dim()) +
                     " (statistics from different detectors?)");
  const auto s2 = symmetric(b.sigma.to(torch::kCPU, kF64));
  const double mean_term = (mu_ - b.mu.to(torch::kCPU, kF64)).square().sum().item<double>();
  auto inner = symmetric(torch::mm(torch::mm(v_.t(), s2), v_) * torch::outer(r_, r_));
  const double sqrt_trace = torch::linalg_eigvalsh(inner).clamp_min(0).sqrt().sum().item<double>();
  const double fd = mean_term + trace_ + s2.trace().item<double>() - 2 * sqrt_trace;
  // A squared distance; identical sets may round to a hair below zero.
  return std::max(fd, 0.0);
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) { return FrechetFrom(a)(b); }

PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& generated, int64_t k) {
  TORCH_CHECK(real.dim() == 2 && generated.dim() == 2, "precision_recall expects features [N,D]");
  if (real.size(1) != generated.size(1))
    throw UsageError("feature dimensions differ: " + std::to_string(real.size(1)) + " vs " +
                     std::to_string(generated.size(1)));
  for (const auto* set : {&real, &generated})
    if (set->size(0) <= k)
      throw UsageError("precision/recall with k=" + std::to_string(k) + " need at least " + std::to_string(k + 1) +
                       " images in each set, got " + std::to_string(set->size(0)));
  // Centring both sets on one point leaves distances unchanged and keeps the norms in the expansion small.
  auto r = real.to(kF64);
  const auto centre = r.mean(0);
  r = r - centre;
  auto g = generated.to(r.device(), kF64) - centre;
  const auto r_sq = r.square().sum(1), g_sq = g.square().sum(1);
  PrecisionRecall pr;
  pr.precision = coverage(g, g_sq, r, r_sq, knn_radii_sq(r, r_sq, k));
  pr.recall = coverage(r, r_sq, g, g_sq, knn_radii_sq(g, g_sq, k));
  return pr;
}

void write_stats(const std::string& path, const FeatureStats& stats) {
  write_npz(path, {{"mu", stats.mu.to(torch::kCPU, kF64).contiguous()},
                   {"sigma", stats.sigma.to(torch::kCPU, kF64).contiguous()},
                   {"num_images", torch::tensor(stats.num_images, torch::kInt64).reshape({})}});
}

FeatureStats read_stats(const std::string& path) {
  auto arrays = read_npz(path);
  auto bad = [&](const std::string& why) {
    return UsageError("'" + path + "' is not a usable statistics file: " + why + "; make one with autoguide ref");
  };
  for (const char* name : {"mu", "sigma"})
    if (!arrays.count(name)) throw bad(std::string("no ") + name + " array");
  const auto& mu = arrays["mu"];
  const auto& sigma = arrays["sigma"];
  if (!mu.is_floating_point() || !sigma.is_floating_point()) throw bad("mu and sigma must be floating point");
  if (mu.dim() != 1 || mu.size(0) == 0) throw bad("mu must be a vector [D]");
  const int64_t d = mu.size(0);
  if (sigma.dim() != 2 || sigma.size(0) != d || sigma.size(1) != d)
    throw bad("sigma must be [" + std::to_string(d) + "," + std::to_string(d) + "] to match mu");
  if (!torch::isfinite(mu).all().item<bool>() || !torch::isfinite(sigma).all().item<bool>())
    throw bad("mu or sigma holds NaN or infinite values");
  FeatureStats s{mu.to(kF64), sigma.to(kF64), 0};
  if (arrays.count("num_images")) {
    const auto& n = arrays["num_images"];
    if (n.numel() != 1 || n.is_floating_point()) throw bad("num_images must be one integer");
    s.num_images = n.item<int64_t>();
    if (s.num_images < 2) throw bad("num_images is " + std::to_string(s.num_images) + " (at least 2 are needed)");
  }
  return s;
}

}  // namespace autoguide
