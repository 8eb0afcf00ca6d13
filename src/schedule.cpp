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
    std::snprintf(text, sizeof text, "sigma_min %g, sigma_max %g and rho %g", s.sigma_min, s.sigma_max, s.rho);
    throw FieldError({"rho", "sigma_min", "sigma_max"},
                     std::string(text) + " give noise levels outside float32's range, in which sampling " +
                         "computes; use a larger rho or a narrower sigma range");
  }
}

}  // namespace

void check_num_steps(int num_steps) {
  if (num_steps < kMinSteps)
    throw FieldError("num_steps", "num_steps must be at least " + std::to_string(kMinSteps) + " (got " +
                                      std::to_string(num_steps) + ")");
}

void validate(const ScheduleOptions& s) {
  check_num_steps(s.num_steps);
  if (!(std::isfinite(s.sigma_min) && s.sigma_min > 0)) throw FieldError("sigma_min", "sigma_min must be a positive number");
  if (!(std::isfinite(s.sigma_max) && s.sigma_max > s.sigma_min))
    throw FieldError({"sigma_max", "sigma_min"}, "sigma_max must be a finite number above sigma_min");
  if (!(std::isfinite(s.rho) && s.rho > 0)) throw FieldError("rho", "rho must be a positive number");
  check_float32(s.sigma_min, "sigma_min");
  check_float32(s.sigma_max, "sigma_max");
  check_float32(s.rho, "rho");
  if (!(static_cast<float>(s.sigma_min) > 0)) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", s.sigma_min);
    throw FieldError("sigma_min", "sigma_min " + std::string(text) +
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

GuidanceInterval GuidanceInterval::sigma(double lo, double hi) {
  if (!(std::isfinite(lo) && std::isfinite(hi) && lo >= 0 && lo < hi)) {
    char text[96];
    std::snprintf(text, sizeof text, "%g,%g", lo, hi);
    throw FieldError("interval_sigma", "interval_sigma needs 0 <= LO < HI (got " + std::string(text) + ")");
  }
  GuidanceInterval g;
  g.kind = Kind::Sigma;
  g.lo = lo, g.hi = hi;
  return g;
}

GuidanceInterval GuidanceInterval::steps(int first, int last) {
  if (first < 0 || first > last)
    throw FieldError("interval_steps", "interval_steps needs 0 <= A <= B (got " + std::to_string(first) + "," +
                                           std::to_string(last) + ")");
  GuidanceInterval g;
  g.kind = Kind::Steps;
  g.first = first, g.last = last;
  return g;
}

void GuidanceInterval::validate(int num_steps) const {
  if (kind == Kind::Steps && last > num_steps - 1)
    throw FieldError({"interval_steps", "num_steps"},
                     "interval_steps " + std::to_string(first) + "," + std::to_string(last) +
                         " lies outside the steps 0-" + std::to_string(num_steps - 1) + " of num_steps " +
                         std::to_string(num_steps));
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
