#include "autoguide/seeds.hpp"

#include <ATen/Context.h>

#include <regex>

#include "autoguide/error.hpp"

namespace autoguide {

std::vector<int64_t> parse_seed_list(const std::string& text) {
  const std::regex range_re(R"(^(\d+)-(\d+)$)"), single_re(R"(^\d+$)");
  auto bad = [&](const std::string& why) {
    return UsageError("invalid seed list '" + text + "': " + why + "; use e.g. 0-63 or 1,2,5-10");
  };
  if (text.empty()) throw bad("it is empty");
  std::vector<int64_t> seeds;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string part = text.substr(start, end - start);
    std::smatch m;
    try {
      if (std::regex_match(part, m, range_re)) {
        int64_t a = std::stoll(m[1].str()), b = std::stoll(m[2].str());
        if (b < a) throw bad("range " + part + " runs backwards");
        if (b - a > 100000000) throw bad("range " + part + " is too long");
        for (int64_t s = a; s <= b; ++s) seeds.push_back(s);
      } else if (std::regex_match(part, single_re)) {
        seeds.push_back(std::stoll(part));
      } else {
        throw bad(part.empty() ? std::string("it has an empty entry") : "'" + part + "' is not a non-negative integer or range");
      }
    } catch (const std::out_of_range&) {
      throw bad("'" + part + "' is too large");
    }
    start = end + 1;
  }
  return seeds;
}

SeedGenerators::SeedGenerators(const std::vector<int64_t>& seeds, const torch::Device& device) : device_(device) {
  // Cloning the device's default generator gives a fresh generator of the right kind (CPU mt19937 or CUDA
  // Philox) without CUDA headers; set_current_seed then resets its whole state as torch.Generator.manual_seed.
  const at::Generator& base = at::globalContext().defaultGenerator(device);
  gens_.reserve(seeds.size());
  for (int64_t s : seeds) {
    at::Generator g = base.clone();
    g.set_current_seed(static_cast<uint64_t>(s) % (uint64_t(1) << 32));
    gens_.push_back(std::move(g));
  }
}

torch::Tensor SeedGenerators::randn(at::IntArrayRef per_sample_shape) {
  std::vector<torch::Tensor> parts;
  parts.reserve(gens_.size());
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device_);
  for (auto& g : gens_) parts.push_back(at::randn(per_sample_shape, g, opts));
  return torch::stack(parts);
}

torch::Tensor SeedGenerators::randn_like(const torch::Tensor& batch) { return randn(batch.sizes().slice(1)); }

torch::Tensor SeedGenerators::randint(int64_t high) {
  std::vector<torch::Tensor> parts;
  parts.reserve(gens_.size());
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(device_);
  for (auto& g : gens_) parts.push_back(at::randint(high, {}, g, opts));
  return torch::stack(parts);
}

NoiseAndLabels draw_noise_and_labels(SeedGenerators& gens, int channels, int resolution, int label_dim,
                                     int class_idx) {
  NoiseAndLabels r;
  r.noise = gens.randn({channels, resolution, resolution});
  if (label_dim > 0) {
    r.classes = gens.randint(label_dim);
    if (class_idx >= 0) r.classes.fill_(class_idx);
    r.labels = torch::eye(label_dim, r.noise.options()).index_select(0, r.classes);
  }
  return r;
}

}  // namespace autoguide
