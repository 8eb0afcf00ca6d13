// Error kinds that map onto the CLI's exit codes: 2 for bad usage or input, 1 for a runtime failure.
#pragma once
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace autoguide {

// Bad usage or bad input: the message names the problem and the fix; exit code 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A failure while doing valid work (out of memory, a device error); exit code 1.
struct RuntimeFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The library's own fields an error names (`num_steps`, `guidance`, `nets.guide`, ...), the one at fault
// first: the message spells each as the library does, so that a front end with its own names for them (the
// CLI's --steps) can say the same thing in its words.
struct NamedFields {
  std::vector<std::string> fields;
};

// Bad input in named fields (exit code 2).
struct FieldError : UsageError, NamedFields {
  FieldError(std::vector<std::string> named, const std::string& message)
      : UsageError(message), NamedFields{std::move(named)} {}
  FieldError(std::initializer_list<std::string> named, const std::string& message)
      : FieldError(std::vector<std::string>(named), message) {}
  FieldError(const std::string& field, const std::string& message)
      : FieldError(std::vector<std::string>{field}, message) {}
};

// A runtime failure whose fix is a change to named fields (exit code 1).
struct FieldFailure : RuntimeFailure, NamedFields {
  FieldFailure(std::initializer_list<std::string> named, const std::string& message)
      : RuntimeFailure(message), NamedFields{std::vector<std::string>(named)} {}
};

}  // namespace autoguide
