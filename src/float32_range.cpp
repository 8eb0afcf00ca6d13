#include "float32_range.hpp"

#include <cmath>
#include <cstdio>
#include <limits>

#include "autoguide/error.hpp"

namespace autoguide {

bool fits_float32(double v) { return std::isfinite(v) && std::abs(v) <= std::numeric_limits<float>::max(); }

void check_float32(double value, const std::string& field) {
  if (fits_float32(value)) return;
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  throw FieldError(field, field + " " + text + " is outside float32's range (magnitude at most 3.4e38), in which " +
                              "sampling computes; give a smaller value");
}

}  // namespace autoguide
