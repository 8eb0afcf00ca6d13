#include "progress_text.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace autoguide {

std::string format_hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-:--:--";
  const auto s = static_cast<long long>(std::llround(seconds));
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

std::string progress_text(const std::string& text, double fraction, double images, double seconds) {
  const double rate = seconds > 0 ? images / seconds : 0;
  const double eta = fraction > 0 && seconds > 0 ? seconds * (1 - fraction) / fraction : -1;
  char stats[96];
  std::snprintf(stats, sizeof stats, rate >= 100 ? "%.0f%%  elapsed %s  %.0f images/s  ETA %s"
                                                 : "%.0f%%  elapsed %s  %.3g images/s  ETA %s",
                std::floor(100 * fraction + 1e-9), format_hms(seconds).c_str(), rate, format_hms(eta).c_str());
  return text.empty() ? stats : text + "  " + stats;
}

ProgressPacer::ProgressPacer(double period_seconds, double step) : period_(period_seconds), step_(step) {}

bool ProgressPacer::due(double fraction, double seconds) {
  const auto passed = static_cast<long>(std::floor(fraction / step_ + 1e-9));
  if (passed > last_step_ || seconds - last_seconds_ >= period_) {
    last_step_ = std::max(last_step_, passed);
    last_seconds_ = seconds;
    return true;
  }
  return false;
}

}  // namespace autoguide
