// Files appear complete or not at all: write to a temporary name in the same folder, then rename.
#pragma once
#include <string>

namespace autoguide {

void write_file_atomic(const std::string& path, const std::string& bytes);

// Creates `dir` (and parents) and proves it is writable; throws UsageError otherwise.
void ensure_writable_dir(const std::string& dir);

// Creates the parent folder of `path` and proves it is writable.
void ensure_writable_parent(const std::string& path);

bool file_exists(const std::string& path);

}  // namespace autoguide
