// How the CLI says an FD estimate and a paired difference: on the terminal, in JSON and in CSV columns.
// Bounds are NaN without resamples: the text then shows the value alone and JSON has null.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autoguide/fd_uncertainty.hpp"

namespace autoguide::cli {

// "9.301 [8.124, 10.48]" (4 significant digits); the value alone without an interval.
std::string interval_text(const FdInterval& i);

// "95%, 200 resamples": how an interval was made.
std::string how_estimated(const FdInterval& i);

// A row's cell for one space: "fd 9.30123 [8.12, 10.48]" (the value in full, as before intervals existed), and
// "\tfd-inf 8.9 [7.9, 9.9]" appended when FD-inf was estimated. `label`: fd_label's "fd" or "fd[name]".
std::string estimate_cells(const std::string& label, const FdEstimate& e);

nlohmann::json interval_json(const FdInterval& i);  // {value, se, lo, hi, confidence, resamples, n}
nlohmann::json estimate_json(const FdEstimate& e);  // interval_json of fd, plus fd_inf: {... , k, sizes, fds} or null
// interval_json of the difference plus a, b (labels), fd_a, fd_b and verdict ("a", "b" or "unresolved").
nlohmann::json difference_json(const FdDifference& d, const std::string& a, const std::string& b);

// "autoguidance w=2.10 beats none w=1.00 by 6.94 [5.70, 8.18]", or "a vs b: not resolved at 128 samples
// (-0.31 [-1.2, 0.58])".
std::string verdict_text(const FdDifference& d, const std::string& a, const std::string& b);

// How a run's estimates were made: {resamples, confidence, seed, fd_inf_min_images}.
nlohmann::json bootstrap_json(const FdSettings& s);

// CSV columns for one space: PREFIX, PREFIX_lo, PREFIX_hi, then PREFIX-inf, PREFIX-inf_lo, PREFIX-inf_hi.
std::vector<std::string> estimate_csv_header(const std::string& prefix);
std::vector<std::string> estimate_csv(const FdEstimate& e);  // empty cells where a number is missing

}  // namespace autoguide::cli
