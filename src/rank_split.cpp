#include "autoguide/rank_split.hpp"

#include <algorithm>

#include "autoguide/error.hpp"

namespace autoguide {

std::vector<IndexRange> rank_batches(int64_t n, int64_t max_batch, const Shard& shard) {
  if (max_batch < 1 || shard.world < 1 || shard.rank < 0 || shard.rank >= shard.world)
    throw UsageError("rank_batches: batch " + std::to_string(max_batch) + ", rank " + std::to_string(shard.rank) +
                     " of " + std::to_string(shard.world));
  const int64_t per_round = max_batch * shard.world;
  const int64_t num = std::max<int64_t>((n + per_round - 1) / per_round, 1) * shard.world;
  std::vector<IndexRange> batches;
  // numpy.array_split: the first n % num parts hold one item more.
  for (int64_t b = shard.rank; b < num; b += shard.world) {
    const int64_t begin = b * (n / num) + std::min(b, n % num);
    const IndexRange r{begin, begin + n / num + (b < n % num ? 1 : 0)};
    if (r.size() > 0) batches.push_back(r);
  }
  return batches;
}

}  // namespace autoguide
