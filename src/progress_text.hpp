// Progress of long work as text. The live line on a terminal and the plain lines in a log (Slurm, torchrun)
// share one format; when a log gets its next line is decided by ProgressPacer.
#pragma once
#include <string>

namespace autoguide {

// Seconds as h:mm:ss (hours unbounded, rounded to the second); "-:--:--" when negative or not finite.
std::string format_hms(double seconds);

// "TEXT  42%  elapsed 0:00:50  3.1 images/s  ETA 0:01:05": where the job is (`text`), the share done
// (`fraction` in [0,1]), the time since the start, the rate since the start (`images` done so far) and the
// time left at that rate ("ETA -:--:--" while nothing is done).
std::string progress_text(const std::string& text, double fraction, double images, double seconds);

// When a log gets its next progress line: each time the job passes another `step` of the whole (5%), or
// `period` seconds after the last line, whichever comes first. Pure: the caller passes the time.
class ProgressPacer {
 public:
  explicit ProgressPacer(double period_seconds = 60, double step = 0.05);
  // True when a line is due at this fraction and time (and then counts it as printed).
  bool due(double fraction, double seconds);

 private:
  double period_, step_;
  long last_step_ = 0;
  double last_seconds_ = 0;
};

}  // namespace autoguide
