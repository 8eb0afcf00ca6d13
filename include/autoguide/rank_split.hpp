// EDM2's division of work into batches and over ranks (generate_images.py):
//   num_batches = max(ceil(n / (max_batch * world)), 1) * world
//   rank_batches = numpy.array_split(numpy.arange(n), num_batches)[rank :: world]
// so under the same world size every rank makes the same images in the same batches as the reference.
// Batches are contiguous ranges of positions in the list; empty ones (more batches than items) are dropped.
#pragma once
#include <cstdint>
#include <vector>

namespace autoguide {

// A contiguous part [begin, end) of a list.
struct IndexRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
  bool operator==(const IndexRange& o) const { return begin == o.begin && end == o.end; }
};

// This process's share of the work: rank `rank` of `world` processes.
struct Shard {
  int rank = 0, world = 1;
};

// The batches of `shard` for n items at most `max_batch` per batch (world = 1: EDM2's plain split).
std::vector<IndexRange> rank_batches(int64_t n, int64_t max_batch, const Shard& shard = {});

}  // namespace autoguide
