// Guidance weight lists and ranges (sweep --guidance) and guidance intervals (--interval-sigma/-steps).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "option_values.hpp"
#include "autoguide/error.hpp"
#include "float32_range.hpp"
#include "autoguide/schedule.hpp"
#include "autoguide/sweep.hpp"
#include "fuzz_target.hpp"

namespace {

void weights(const std::string& text) {
  try {
    const auto w = autoguide::cli::parse_weights(text);
    if (w.empty() || w.size() > 1000 || std::set<double>(w.begin(), w.end()).size() != w.size()) __builtin_trap();
    for (double x : w)
      if (!(x >= 0) || !autoguide::fits_float32(x)) __builtin_trap();
  } catch (const autoguide::UsageError&) {
  }
}

void intervals(const std::string& text) {
  try {
    const auto g = autoguide::cli::parse_interval_sigma(text);
    if (!(std::isfinite(g.lo) && std::isfinite(g.hi) && 0 <= g.lo && g.lo < g.hi)) __builtin_trap();
  } catch (const autoguide::UsageError&) {
  }
  try {
    const auto g = autoguide::cli::parse_interval_steps(text);
    if (!(0 <= g.first && g.first <= g.last)) __builtin_trap();
    g.validate(32);
  } catch (const autoguide::UsageError&) {
  }
}

}  // namespace

static int fuzz_option_values(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  weights(text);
  intervals(text);
  return 0;
}

const bool option_values_registered = register_fuzz_target("option_values", fuzz_option_values);
