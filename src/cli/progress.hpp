// One self-overwriting progress line on stderr when it is a terminal.
#pragma once
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

namespace autoguide::cli {

class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled && ::isatty(STDERR_FILENO)) {}

  // fraction in [0,1] of the whole job; text describes where it is. The line never moves backwards.
  void update(double fraction, const std::string& text) {
    if (!enabled_) return;
    fraction = std::max(fraction, shown_);
    shown_ = fraction;
    const double secs = elapsed();
    const double eta = fraction > 0 ? secs * (1 - fraction) / fraction : 0;
    std::fprintf(stderr, "\r%s  %.0f%%  %.1fs  ETA %.0fs   ", text.c_str(), 100 * fraction, secs, eta);
    std::fflush(stderr);
    dirty_ = true;
  }

  void finish() {
    if (dirty_) std::fprintf(stderr, "\n");
    dirty_ = false;
  }

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  bool enabled_;
  bool dirty_ = false;
  double shown_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace autoguide::cli
