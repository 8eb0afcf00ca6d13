// CSV as the results files write it (RFC 4180: fields quoted where they hold a comma, quote or newline).
#pragma once
#include <string>
#include <vector>

namespace autoguide::cli {

std::string csv_field(const std::string& s);
// The fields joined by commas, ending in a newline.
std::string csv_line(const std::vector<std::string>& fields);

}  // namespace autoguide::cli
