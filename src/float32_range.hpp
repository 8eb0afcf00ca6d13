// Sampling computes in float32 (as EDM2 does), so every number an option feeds into it must survive the
// conversion: a double beyond float32's range would become Inf, or make LibTorch throw mid-run.
#pragma once
#include <string>

namespace autoguide {

// True when v is finite and converts to a finite float32 (|v| <= 3.4028235e38).
bool fits_float32(double v);

// Throws FieldError naming `field` and its value when fits_float32(value) is false.
void check_float32(double value, const std::string& field);

}  // namespace autoguide
