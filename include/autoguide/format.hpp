// How numbers and messages are spelled in what the tool prints and records.
#pragma once
#include <string>

namespace autoguide {

// The shortest spelling that reads back as the same double ("2.1", not "2.1000000000000001"; "1e+308").
std::string format_number(double v);

// The text up to the first newline: errors are one line.
std::string first_line(const std::string& text);

}  // namespace autoguide
