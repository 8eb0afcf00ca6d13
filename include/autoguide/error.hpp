// Error kinds that map onto the CLI's exit codes: 2 for bad usage or input, 1 for a runtime failure.
#pragma once
#include <stdexcept>
#include <string>

namespace autoguide {

// Bad usage or bad input: the message names the problem and the fix; exit code 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A failure while doing valid work (out of memory, a device error); exit code 1.
struct RuntimeFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace autoguide
