// Progress on stderr: one self-overwriting line when it is a terminal; in a log (Slurm, torchrun: stderr is a
// file or a pipe) one plain line per 5% of the job or per `log_period` seconds, whichever comes first.
#pragma once
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "progress_text.hpp"

namespace autoguide::cli {

class ProgressLine {
 public:
  explicit ProgressLine(bool enabled, double log_period = 60)
      : live_(enabled && ::isatty(STDERR_FILENO)), log_(enabled && !live_), pacer_(log_period) {}
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  ~ProgressLine() { finish(); }  // an error line after a live line starts on its own line

  // fraction in [0,1] of the whole job, `images` done so far in it (for the rate); text describes where it
  // is. The line never moves backwards.
  void update(double fraction, double images, const std::string& text) {
    if (!live_ && !log_) return;
    fraction = std::max(fraction, shown_);
    shown_ = fraction;
    const double secs = elapsed();
    if (live_) {
      std::fprintf(stderr, "\r%s   ", progress_text(text, fraction, images, secs).c_str());
      dirty_ = true;
    } else if (pacer_.due(fraction, secs)) {
      std::fprintf(stderr, "autoguide: %s\n", progress_text(text, fraction, images, secs).c_str());
    }
    std::fflush(stderr);
  }

  void finish() {
    if (dirty_) std::fprintf(stderr, "\n");
    dirty_ = false;
  }

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  bool live_, log_;
  ProgressPacer pacer_;
  bool dirty_ = false;
  double shown_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace autoguide::cli
