#include "autoguide/seeds.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <algorithm>
#include <utility>

#include "autoguide/error.hpp"

namespace autoguide {

namespace {

// Every seed becomes an int64 before sampling starts, so the list's length is its memory: 80 MB at most.
constexpr int64_t kMaxSeeds = 10000000;

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::vector<int64_t> parse_seed_list(const std::string& text) {
  auto bad = [&](const std::string& why) {
    const std::string shown = text.size() <= 60 ? text : text.substr(0, 57) + "...";
    return UsageError("invalid seed list '" + shown + "': " + why + "; use e.g. 0-63 or 1,2,5-10");
  };
  if (text.empty()) throw bad("it is empty");
  // First the ranges (checked by hand: std::regex recurses per character and overflows the stack on long
  // input), then the seeds, once their number is known to be sane.
  std::vector<std::pair<int64_t, int64_t>> ranges;
  int64_t count = 0;
  for (size_t start = 0; start <= text.size();) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string part = text.substr(start, end - start);
    const size_t dash = part.find('-');
    const std::string a = part.substr(0, dash), b = dash == std::string::npos ? a : part.substr(dash + 1);
    if (!all_digits(a) || !all_digits(b))
      throw bad(part.empty() ? std::string("it has an empty entry")
                             : "'" + part.substr(0, 40) + "' is not a non-negative integer or range");
    int64_t lo = 0, hi = 0;
    try {
      lo = std::stoll(a), hi = std::stoll(b);
    } catch (const std::out_of_range&) {
      throw bad("'" + part.substr(0, 40) + "' is too large");
    }
    if (hi < lo) throw bad("range " + part.substr(0, 40) + " runs backwards");
    if (hi - lo >= kMaxSeeds - count)
      throw bad("it has more than " + std::to_string(kMaxSeeds) + " seeds; split the run");
    count += hi - lo + 1;
    ranges.emplace_back(lo, hi);
    start = end + 1;
  }
  std::vector<int64_t> seeds;
  seeds.reserve(static_cast<size_t>(count));
  for (const auto& [lo, hi] : ranges)
    for (int64_t s = lo; s <= hi; ++s) seeds.push_back(s);
  return seeds;
}

SeedGenerators::SeedGenerators(const std::vector<int64_t>& seeds, const torch::Device& device) : device_(device) {
  // On the CPU each generator is made directly. Elsewhere, cloning the device's default generator gives a fresh
  // one of the right kind (CUDA Philox) without CUDA headers; but LibTorch 1.13 never frees a clone
  // (GeneratorImpl::clone leaves its weak count at 0; found by LeakSanitizer, 2.6 KB per CPU seed), so the CPU
  // path avoids it. set_current_seed then resets the whole state, as torch.Generator.manual_seed does.
  gens_.reserve(seeds.size());
  for (int64_t s : seeds) {
    at::Generator g = device.is_cpu() ? at::make_generator<at::CPUGeneratorImpl>()
                                      : at::globalContext().defaultGenerator(device).clone();
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
    // one_hot, not rows of eye(label_dim): memory N x label_dim, not label_dim^2.
    r.labels = torch::one_hot(r.classes, label_dim).to(r.noise.options());
  }
  return r;
}

}  // namespace autoguide
