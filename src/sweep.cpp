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

namespace {

constexpr size_t kMaxWeights = 1000;

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

struct Number {
  double value;
  int decimals;  // digits after the point; -1 when written with an exponent
};

Number parse_number(const std::string& item, const std::string& text, const std::string& option) {
  const std::string s = trim(item);
  char* end = nullptr;
  const double v = s.empty() ? 0 : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v))
    throw UsageError(option + " '" + text + "': '" + s +
                     "' is not a number; give weights as a list (1,1.5,2.1) or a range START:STOP:STEP (1:3:0.25)");
  int decimals = 0;
  if (s.find_first_of("eE") != std::string::npos) decimals = -1;
  else if (const auto dot = s.find('.'); dot != std::string::npos) decimals = static_cast<int>(s.size() - dot - 1);
  return {v, decimals};
}

std::vector<double> parse_range(const std::string& text, const std::string& option) {
  std::vector<Number> parts;
  size_t start = 0;
  for (size_t colon; (colon = text.find(':', start)) != std::string::npos; start = colon + 1)
    parts.push_back(parse_number(text.substr(start, colon - start), text, option));
  parts.push_back(parse_number(text.substr(start), text, option));
  if (parts.size() != 3)
    throw UsageError(option + " '" + text + "': a range has three parts, START:STOP:STEP (e.g. 1:3:0.25)");
  const double lo = parts[0].value, hi = parts[1].value, step = parts[2].value;
  if (!(step > 0)) throw UsageError(option + " '" + text + "': the step must be positive");
  if (hi < lo) throw UsageError(option + " '" + text + "': STOP is below START");
  if ((hi - lo) / step + 1 > kMaxWeights)
    throw UsageError(option + " '" + text + "' gives more than " + std::to_string(kMaxWeights) + " weights");
  int decimals = 0;
  for (const auto& p : parts) decimals = (p.decimals < 0 || decimals < 0) ? -1 : std::max(decimals, p.decimals);
  std::vector<double> w;
  // The step counts too: llround of a step beyond 2^63 units gives no usable number (found by fuzzing).
  const double largest = std::max({std::abs(lo), std::abs(hi), step});
  if (decimals >= 0 && decimals <= 9 && largest * std::pow(10.0, decimals) < 1e15) {
    // Whole numbers of 10^-decimals: exact, so STOP is reached exactly and each value is the correctly
    // rounded quotient, i.e. what parsing its decimal spelling gives.
    const double unit = std::pow(10.0, decimals);
    const long long a = std::llround(lo * unit), b = std::llround(hi * unit), d = std::llround(step * unit);
    for (long long k = a; k <= b; k += d) w.push_back(static_cast<double>(k) / unit);
  } else {
    const auto n = static_cast<long long>(std::floor((hi - lo) / step + 1e-9));
    for (long long i = 0; i <= n; ++i) w.push_back(lo + static_cast<double>(i) * step);
  }
  return w;
}

}  // namespace

std::vector<double> parse_weights(const std::string& text, const std::string& option) {
  if (trim(text).empty()) throw UsageError(option + " is empty; give e.g. 1,1.5,2.1 or 1:3:0.25");
  std::vector<double> w;
  if (text.find(':') != std::string::npos) {
    if (text.find(',') != std::string::npos)
      throw UsageError(option + " '" + text + "': give either a list (1,1.5,2.1) or one range (1:3:0.25), not both");
    w = parse_range(text, option);
  } else {
    size_t start = 0;
    for (size_t comma; (comma = text.find(',', start)) != std::string::npos; start = comma + 1)
      w.push_back(parse_number(text.substr(start, comma - start), text, option).value);
    w.push_back(parse_number(text.substr(start), text, option).value);
    if (w.size() > kMaxWeights)
      throw UsageError(option + " lists more than " + std::to_string(kMaxWeights) + " weights");
  }
  std::set<double> seen;
  for (double x : w) {
    validate_weight(x, option);
    if (!seen.insert(x).second) throw UsageError(option + " '" + text + "' repeats the weight " + format_weight(x));
  }
  return w;
}

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
