#include "autoguide/schedule.hpp"

#include <cmath>
#include <cstdio>

#include "autoguide/error.hpp"
#include "float32_range.hpp"

namespace autoguide {

namespace {

// The options can each fit float32 and still make a schedule that does not: sigma^(1/rho) overflows for a
// small rho, and the float32 powers can reach Inf or 0 on the way. Checked on the very sigmas sampling uses.
void check_schedule_range(const ScheduleOptions& s) {
  const bool ends_fit =
      fits_float32(std::pow(s.sigma_max, 1.0 / s.rho)) && fits_float32(std::pow(s.sigma_min, 1.0 / s.rho));
  const auto sigmas = ends_fit ? karras_sigmas(s, torch::kCPU).slice(0, 0, s.num_steps) : torch::Tensor();
  if (!ends_fit || !torch::isfinite(sigmas).all().item<bool>() || !(sigmas > 0).all().item<bool>()) {
    char text[160];
    std::snprintf(text, sizeof text, "--sigma_min %g, --sigma_max %g and --rho %g", s.sigma_min, s.sigma_max, s.rho);
    throw UsageError(std::string(text) + " give noise levels outside float32's range, in which sampling " +
                     "computes; use a larger --rho or a narrower sigma range");
  }
}

}  // namespace

void validate(const ScheduleOptions& s) {
  if (s.num_steps < 2) throw UsageError("--steps must be at least 2 (got " + std::to_string(s.num_steps) + ")");
  if (!(std::isfinite(s.sigma_min) && s.sigma_min > 0)) throw UsageError("--sigma_min must be a positive number");
  if (!(std::isfinite(s.sigma_max) && s.sigma_max > s.sigma_min))
    throw UsageError("--sigma_max must be a finite number above --sigma_min");
  if (!(std::isfinite(s.rho) && s.rho > 0)) throw UsageError("--rho must be a positive number");
  check_float32(s.sigma_min, "--sigma_min");
  check_float32(s.sigma_max, "--sigma_max");
  check_float32(s.rho, "--rho");
  if (!(static_cast<float>(s.sigma_min) > 0)) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", s.sigma_min);
    throw UsageError("--sigma_min " + std::string(text) +
                     " rounds to 0 in float32, in which sampling computes; give a larger value");
  }
  check_schedule_range(s);
}

torch::Tensor karras_sigmas(const ScheduleOptions& s, const torch::Device& device) {
  const double max_inv_rho = std::pow(s.sigma_max, 1.0 / s.rho);
  const double min_inv_rho = std::pow(s.sigma_min, 1.0 / s.rho);
  auto i = torch::arange(s.num_steps, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  // Eq. 5: sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
  auto t = (i / (s.num_steps - 1) * (min_inv_rho - max_inv_rho) + max_inv_rho).pow(s.rho);
  return torch::cat({t, torch::zeros_like(t.slice(0, 0, 1))});
}

namespace {

std::pair<std::string, std::string> split_pair(const std::string& text, const std::string& option,
                                               const std::string& example) {
  const auto comma = text.find(',');
  if (comma == std::string::npos || text.find(',', comma + 1) != std::string::npos)
    throw UsageError(option + " takes two values separated by a comma, e.g. " + option + " " + example);
  return {text.substr(0, comma), text.substr(comma + 1)};
}

}  // namespace

GuidanceInterval GuidanceInterval::parse_sigma(const std::string& text) {
  auto [a, b] = split_pair(text, "--interval-sigma", "0.28,2.9");
  GuidanceInterval g;
  g.kind = Kind::Sigma;
  try {
    size_t pa = 0, pb = 0;
    g.lo = std::stod(a, &pa);
    g.hi = std::stod(b, &pb);
    if (pa != a.size() || pb != b.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw UsageError("--interval-sigma '" + text + "' is not two numbers, e.g. 0.28,2.9");
  }
  if (!(std::isfinite(g.lo) && std::isfinite(g.hi) && g.lo >= 0 && g.lo < g.hi))
    throw UsageError("--interval-sigma needs 0 <= LO < HI (got " + text + ")");
  return g;
}

GuidanceInterval GuidanceInterval::parse_steps(const std::string& text) {
  auto [a, b] = split_pair(text, "--interval-steps", "17,22");
  // Up to 9 digits: a step index fits an int (std::stoi would throw out_of_range, not a usage error).
  auto index = [](const std::string& s) {
    return !s.empty() && s.size() <= 9 && s.find_first_not_of("0123456789") == std::string::npos;
  };
  if (!index(a) || !index(b))
    throw UsageError("--interval-steps '" + text + "' is not two step indices, e.g. 17,22");
  GuidanceInterval g;
  g.kind = Kind::Steps;
  g.first = std::stoi(a);
  g.last = std::stoi(b);
  if (g.first > g.last) throw UsageError("--interval-steps needs A <= B (got " + text + ")");
  return g;
}

void GuidanceInterval::validate(int num_steps) const {
  if (kind == Kind::Steps && last > num_steps - 1)
    throw UsageError("--interval-steps " + std::to_string(first) + "," + std::to_string(last) +
                     " lies outside the steps 0-" + std::to_string(num_steps - 1));
}

bool GuidanceInterval::contains(int step, float sigma) const {
  switch (kind) {
    case Kind::Everywhere: return true;
    case Kind::Sigma: return sigma > lo && sigma <= hi;  // (lo, hi], the paper's half-open interval
    case Kind::Steps: return step >= first && step <= last;
  }
  return true;
}

std::string GuidanceInterval::describe() const {
  char buf[96];
  switch (kind) {
    case Kind::Everywhere: return "all steps";
    case Kind::Sigma: std::snprintf(buf, sizeof buf, "sigma in (%g, %g]", lo, hi); return buf;
    case Kind::Steps: std::snprintf(buf, sizeof buf, "steps %d-%d", first, last); return buf;
  }
  return "";
}

}  // namespace autoguide
