#include "rank_stats.hpp"

namespace autoguide {

StatsAccumulator merge_stats(Group* group, const StatsAccumulator& acc, int64_t dim) {
  if (!group) return acc;
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const double n = static_cast<double>(acc.count());
  const torch::Tensor mean = n > 0 ? acc.mean().cpu() : torch::zeros({dim}, f64);
  const torch::Tensor scatter = n > 0 ? acc.scatter().cpu() : torch::zeros({dim, dim}, f64);
  // One reduction for the count and the sum: [N, Σf].
  const torch::Tensor first = group->all_reduce_sum(torch::cat({torch::full({1}, n, f64), mean * n}));
  const double total = first[0].item<double>();
  const torch::Tensor mu = total > 0 ? first.narrow(0, 1, dim) / total : torch::zeros({dim}, f64);
  const torch::Tensor delta = mean - mu;
  const torch::Tensor merged = group->all_reduce_sum(scatter + torch::outer(delta, delta) * n);
  return StatsAccumulator(static_cast<int64_t>(total), mu, merged);
}

}  // namespace autoguide
