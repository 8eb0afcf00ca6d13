// SHA-256 of files, so that every output names the exact networks it came from.
#pragma once
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace autoguide {

std::string sha256_hex(const std::string& bytes);
// Of the pieces' bytes in order, as of one string (e.g. a net's tensors, without copying them into one).
std::string sha256_pieces(const std::vector<std::pair<const void*, size_t>>& pieces);
std::string sha256_file(const std::string& path);  // throws UsageError when unreadable

}  // namespace autoguide
