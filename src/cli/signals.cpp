#include "signals.hpp"

#include <signal.h>
#include <time.h>

#include <atomic>

#include "autoguide/stop.hpp"

namespace autoguide::cli {

namespace {

std::atomic<long long> first_request_ms{0};  // CLOCK_MONOTONIC, when the stop was requested

long long now_ms() {  // clock_gettime is async-signal-safe
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<long long>(t.tv_sec) * 1000 + t.tv_nsec / 1000000;
}

extern "C" void on_stop_signal(int sig) {
  if (!stop_requested()) {
    first_request_ms.store(now_ms());
    request_stop(sig);
    return;
  }
  if (now_ms() - first_request_ms.load() < 1000) return;
  ::signal(sig, SIG_DFL);  // asked again: end now, with the signal's own status
  ::raise(sig);
}

}  // namespace

void install_stop_handlers() {
  static_assert(std::atomic<long long>::is_always_lock_free, "the handler's clock must be async-signal-safe");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // reads, writes and waits carry on; the batch loop notices the request
  for (int sig : {SIGTERM, SIGINT}) ::sigaction(sig, &sa, nullptr);
}

}  // namespace autoguide::cli
