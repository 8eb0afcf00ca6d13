// Option values as users type them: weight lists and ranges, guidance intervals, sampler and precision
// names. Each parser names the flag it reads (`flag`) in its errors, and leaves the checks of the values
// themselves to the library, so a rule is written once.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "autoguide/model.hpp"
#include "autoguide/sampler.hpp"
#include "autoguide/schedule.hpp"

namespace autoguide::cli {

// Guidance weights: a list "1,1.5,2.1" (in the given order) or a range "START:STOP:STEP" from START up to
// STOP inclusive (within rounding). Range values are rounded to the decimals written, so 1:2:0.1 gives the
// very doubles that "1.1", "1.2", ... parse to. Throws UsageError for garbage, an empty item, a zero or
// negative step, STOP < START, a repeated weight, more than 1000 weights, or a weight validate_weight refuses.
std::vector<double> parse_weights(const std::string& text, const std::string& flag = "--guidance");

// Post-hoc EMA lengths "STD[,STD|START:STOP:STEP][@KIMG]": relative stds (a list or a range, as weights are
// written) and optionally the snapshot's training length in kimg. Each std must pass check_ema_std.
struct EmaLengths {
  std::vector<double> stds;
  std::optional<int64_t> kimg;
};
EmaLengths parse_ema_lengths(const std::string& text, const std::string& flag);

// "LO,HI" (sigmas) and "A,B" (step indices) for the guidance interval.
GuidanceInterval parse_interval_sigma(const std::string& text, const std::string& flag = "--interval-sigma");
GuidanceInterval parse_interval_steps(const std::string& text, const std::string& flag = "--interval-steps");

// "heun", "euler", "dpmpp2m" (or "dpm++2m").
SamplerKind parse_sampler(const std::string& name, const std::string& flag = "--sampler");

// "auto", "fp32", "fp16", "bf16".
NetPrecision parse_precision(const std::string& name, const std::string& flag = "--dtype");

}  // namespace autoguide::cli
