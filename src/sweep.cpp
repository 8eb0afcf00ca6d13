#include "autoguide/sweep.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "autoguide/error.hpp"
#include "autoguide/guidance.hpp"

namespace autoguide {

std::string format_weight(double w) {
  char s[64];
  for (int d = 2; d <= 9; ++d) {
    std::snprintf(s, sizeof s, "%.*f", d, w);
    if (std::strtod(s, nullptr) == w) return s;
  }
  std::snprintf(s, sizeof s, "%.17g", w);
  return s;
}

GenerateRequest Setting::request(const GenerateRequest& base) const {
  GenerateRequest r = base;
  r.guidance = guidance;
  r.alpha = alpha;
  return r;
}

void validate(const std::vector<Setting>& settings, const GenerateRequest& base) {
  for (const auto& s : settings) validate(s.request(base), s.nets);
}

SettingRun run_setting(const Setting& setting, const GenerateRequest& base, PixelDecoder& decoder,
                       int64_t preview, const PixelSink& sink, const ProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const GenerateRequest req = setting.request(base);
  SettingRun run;
  run.mode = run_mode(req, setting.nets);
  std::vector<torch::Tensor> kept;
  auto keep = [&](const BatchResult& r, const torch::Tensor& pixels) {
    const int64_t take = std::clamp<int64_t>(preview - r.first, 0, pixels.size(0));  // batches are contiguous
    if (take > 0) kept.push_back(pixels.narrow(0, 0, take));
    for (int64_t k = 0; k < take; ++k) run.preview_positions.push_back(r.first + k);
    if (sink) sink(r, pixels);
  };
  run.done = generate_images(setting.nets, req, &decoder, keep, progress);
  if (!kept.empty()) run.preview = torch::cat(kept);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return run;
}

}  // namespace autoguide
