// SHA-256 of files, so that every output names the exact networks it came from.
#pragma once
#include <string>

namespace autoguide {

std::string sha256_hex(const std::string& bytes);
std::string sha256_file(const std::string& path);  // throws UsageError when unreadable

}  // namespace autoguide
