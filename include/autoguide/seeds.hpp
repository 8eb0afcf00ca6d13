// Seed lists and per-seed random streams, drawn in EDM2's order: noise, then class, then churn noise.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace autoguide {

// "0-63", "1,2,5-10" -> seeds in the given order. Throws UsageError on empty, reversed or malformed lists and
// on more than 10^7 seeds in all.
std::vector<int64_t> parse_seed_list(const std::string& text);

// One generator per seed (seeded with seed mod 2^32) on the sampling device, so that sample k does not depend
// on which other seeds share its batch.
class SeedGenerators {
 public:
  SeedGenerators(const std::vector<int64_t>& seeds, const torch::Device& device);

  // torch.stack([randn(shape, generator=g) for g in gens]) in float32.
  torch::Tensor randn(at::IntArrayRef per_sample_shape);
  torch::Tensor randn_like(const torch::Tensor& batch);
  // torch.stack([randint(high, size=[], generator=g) for g in gens]) as int64.
  torch::Tensor randint(int64_t high);

  size_t size() const { return gens_.size(); }

 private:
  std::vector<at::Generator> gens_;
  torch::Device device_;
};

// EDM2's initial state of a batch: noise [N,C,R,R], then one-hot labels [N,label_dim] (undefined when
// label_dim == 0). The class is drawn even when `class_idx` overrides it, to keep the streams aligned.
struct NoiseAndLabels {
  torch::Tensor noise, labels, classes;  // classes: int64 [N], or undefined
};
NoiseAndLabels draw_noise_and_labels(SeedGenerators& gens, int channels, int resolution, int label_dim,
                                     int class_idx /* -1 = random */);

}  // namespace autoguide
