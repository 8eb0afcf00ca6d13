// Stopping a run early and cleanly: a signal handler (the CLI installs one for SIGTERM and SIGINT) only records
// the request, and the library's batch loops (sampling, feature extraction) look at it between batches and
// throw Interrupted there, so that the caller's destructors release locks and the caller can write down
// what was finished.
#pragma once
#include <stdexcept>
#include <string>

namespace autoguide {

// Records a request to stop, naming the signal that asked. Async-signal-safe; the first request is kept.
void request_stop(int sig) noexcept;
// Whether a stop was requested, and by which signal (0: none).
bool stop_requested() noexcept;
int stop_signal() noexcept;
// Forgets a request (tests; a process that handled it and goes on).
void clear_stop() noexcept;

// "SIGTERM", "SIGINT", or "signal N".
std::string signal_name(int sig);

// A run stopped at a batch boundary because a stop was requested. Carries the signal; the message says by
// what (and, where a caller rethrows it with more, how far the run got and how to finish it).
class Interrupted : public std::runtime_error {
 public:
  explicit Interrupted(int sig, const std::string& message = "");
  int signal() const { return signal_; }

 private:
  int signal_;
};

// Throws Interrupted when a stop was requested: called between batches.
void throw_if_stop_requested();

}  // namespace autoguide
