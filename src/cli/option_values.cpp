#include "option_values.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

#include "autoguide/error.hpp"
#include "autoguide/format.hpp"
#include "autoguide/guidance.hpp"
#include "autoguide/phema.hpp"
#include "autoguide/sweep.hpp"

namespace autoguide::cli {

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

Number parse_number(const std::string& item, const std::string& text, const std::string& flag) {
  const std::string s = trim(item);
  char* end = nullptr;
  const double v = s.empty() ? 0 : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v))
    throw UsageError(flag + " '" + text + "': '" + s +
                     "' is not a number; give weights as a list (1,1.5,2.1) or a range START:STOP:STEP (1:3:0.25)");
  int decimals = 0;
  if (s.find_first_of("eE") != std::string::npos) decimals = -1;
  else if (const auto dot = s.find('.'); dot != std::string::npos) decimals = static_cast<int>(s.size() - dot - 1);
  return {v, decimals};
}

std::vector<double> parse_range(const std::string& text, const std::string& flag) {
  std::vector<Number> parts;
  size_t start = 0;
  for (size_t colon; (colon = text.find(':', start)) != std::string::npos; start = colon + 1)
    parts.push_back(parse_number(text.substr(start, colon - start), text, flag));
  parts.push_back(parse_number(text.substr(start), text, flag));
  if (parts.size() != 3)
    throw UsageError(flag + " '" + text + "': a range has three parts, START:STOP:STEP (e.g. 1:3:0.25)");
  const double lo = parts[0].value, hi = parts[1].value, step = parts[2].value;
  if (!(step > 0)) throw UsageError(flag + " '" + text + "': the step must be positive");
  if (hi < lo) throw UsageError(flag + " '" + text + "': STOP is below START");
  if ((hi - lo) / step + 1 > kMaxWeights)
    throw UsageError(flag + " '" + text + "' gives more than " + std::to_string(kMaxWeights) + " weights");
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

namespace {

// A list "a,b,c" or one range "START:STOP:STEP" of numbers.
std::vector<double> parse_values(const std::string& text, const std::string& flag) {
  std::vector<double> w;
  if (text.find(':') != std::string::npos) {
    if (text.find(',') != std::string::npos)
      throw UsageError(flag + " '" + text + "': give either a list (1,1.5,2.1) or one range (1:3:0.25), not both");
    w = parse_range(text, flag);
  } else {
    size_t start = 0;
    for (size_t comma; (comma = text.find(',', start)) != std::string::npos; start = comma + 1)
      w.push_back(parse_number(text.substr(start, comma - start), text, flag).value);
    w.push_back(parse_number(text.substr(start), text, flag).value);
    if (w.size() > kMaxWeights)
      throw UsageError(flag + " lists more than " + std::to_string(kMaxWeights) + " weights");
  }
  return w;
}

}  // namespace

std::vector<double> parse_weights(const std::string& text, const std::string& flag) {
  if (trim(text).empty()) throw UsageError(flag + " is empty; give e.g. 1,1.5,2.1 or 1:3:0.25");
  const std::vector<double> w = parse_values(text, flag);
  std::set<double> seen;
  for (double x : w) {
    validate_weight(x, flag);
    if (!seen.insert(x).second) throw UsageError(flag + " '" + text + "' repeats the weight " + format_weight(x));
  }
  return w;
}

EmaLengths parse_ema_lengths(const std::string& text, const std::string& flag) {
  const auto at = text.find('@');
  const std::string stds = trim(text.substr(0, at));
  if (stds.empty()) throw UsageError(flag + " is empty; give an EMA std like 0.1, a list 0.05,0.1 or a range 0.05:0.2:0.025");
  EmaLengths e;
  e.stds = parse_values(stds, flag);
  std::set<double> seen;
  for (double s : e.stds) {
    check_ema_std(s, flag);
    if (!seen.insert(s).second) throw UsageError(flag + " '" + text + "' repeats the EMA std " + format_weight(s));
  }
  if (at != std::string::npos) {
    const std::string kimg = trim(text.substr(at + 1));
    char* end = nullptr;
    const long long k = kimg.empty() ? -1 : std::strtoll(kimg.c_str(), &end, 10);
    if (kimg.empty() || end != kimg.c_str() + kimg.size() || k <= 0)
      throw UsageError(flag + " '" + text + "': after @ give a snapshot's training length in kimg, e.g. " + stds + "@2048");
    e.kimg = k;
  }
  return e;
}

namespace {

std::pair<std::string, std::string> split_pair(const std::string& text, const std::string& flag,
                                               const std::string& example) {
  const auto comma = text.find(',');
  if (comma == std::string::npos || text.find(',', comma + 1) != std::string::npos)
    throw UsageError(flag + " takes two values separated by a comma, e.g. " + flag + " " + example);
  return {text.substr(0, comma), text.substr(comma + 1)};
}

}  // namespace

GuidanceInterval parse_interval_sigma(const std::string& text, const std::string& flag) {
  auto [a, b] = split_pair(text, flag, "0.28,2.9");
  double lo = 0, hi = 0;
  try {
    size_t pa = 0, pb = 0;
    lo = std::stod(a, &pa);
    hi = std::stod(b, &pb);
    if (pa != a.size() || pb != b.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw UsageError(flag + " '" + text + "' is not two numbers, e.g. 0.28,2.9");
  }
  return GuidanceInterval::sigma(lo, hi);
}

GuidanceInterval parse_interval_steps(const std::string& text, const std::string& flag) {
  auto [a, b] = split_pair(text, flag, "17,22");
  // Up to 9 digits: a step index fits an int (std::stoi would throw out_of_range, not a usage error).
  auto index = [](const std::string& s) {
    return !s.empty() && s.size() <= 9 && s.find_first_not_of("0123456789") == std::string::npos;
  };
  if (!index(a) || !index(b)) throw UsageError(flag + " '" + text + "' is not two step indices, e.g. 17,22");
  return GuidanceInterval::steps(std::stoi(a), std::stoi(b));
}

SamplerKind parse_sampler(const std::string& name, const std::string& flag) {
  if (name == "heun") return SamplerKind::Heun;
  if (name == "euler") return SamplerKind::Euler;
  if (name == "dpmpp2m" || name == "dpm++2m") return SamplerKind::DpmPP2M;
  throw UsageError("unknown " + flag + " '" + name + "'; use heun (EDM2's), euler or dpmpp2m");
}

NetPrecision parse_precision(const std::string& name, const std::string& flag) {
  if (name == "auto") return NetPrecision::Auto;
  if (name == "fp32") return NetPrecision::FP32;
  if (name == "fp16") return NetPrecision::FP16;
  if (name == "bf16") return NetPrecision::BF16;
  throw UsageError("unknown " + flag + " '" + name + "'; use auto, fp32, fp16 or bf16");
}

}  // namespace autoguide::cli
