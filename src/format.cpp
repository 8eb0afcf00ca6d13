#include "autoguide/format.hpp"

#include <cstdio>
#include <cstdlib>

namespace autoguide {

std::string format_number(double v) {
  char s[64];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(s, sizeof s, "%.*g", digits, v);
    if (std::strtod(s, nullptr) == v) break;
  }
  return s;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace autoguide
