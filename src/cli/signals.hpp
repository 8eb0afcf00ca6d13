// SIGTERM (Slurm's time limit, torchrun's shutdown) and SIGINT (Ctrl-C) stop a run at the next batch
// boundary instead of killing it mid-write: the handler only records the request (autoguide/stop.hpp).
#pragma once

namespace autoguide::cli {

// Installs the handlers (once). The first signal requests the stop; the same or another one again after a
// second (a person pressing Ctrl-C twice) ends the process at once, as without the handlers. Repeats within
// the second are ignored: a launcher forwarding the terminal's SIGINT would otherwise end the run at once.
void install_stop_handlers();

// The exit status of a process ended by `sig` (128 + sig: 143 for SIGTERM, 130 for SIGINT).
inline int exit_code_for_signal(int sig) { return 128 + sig; }

}  // namespace autoguide::cli
