#include "autoguide/stop.hpp"

#include <atomic>
#include <csignal>

namespace autoguide {

namespace {
// Read and written from signal handlers: must be lock-free to be async-signal-safe.
std::atomic<int> requested{0};
static_assert(std::atomic<int>::is_always_lock_free, "a stop request must be async-signal-safe");
}  // namespace

void request_stop(int sig) noexcept {
  int none = 0;
  requested.compare_exchange_strong(none, sig > 0 ? sig : SIGTERM);
}

bool stop_requested() noexcept { return requested.load() != 0; }

int stop_signal() noexcept { return requested.load(); }

void clear_stop() noexcept { requested.store(0); }

std::string signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    default: return "signal " + std::to_string(sig);
  }
}

Interrupted::Interrupted(int sig, const std::string& message)
    : std::runtime_error(message.empty() ? "interrupted by " + signal_name(sig) : message), signal_(sig) {}

void throw_if_stop_requested() {
  if (const int sig = stop_signal()) throw Interrupted(sig);
}

}  // namespace autoguide
