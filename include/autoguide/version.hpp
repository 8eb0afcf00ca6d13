// What this build is: the tool's version, the git commit it was built from, and the LibTorch under it.
#pragma once
#include <string>

namespace autoguide {

// The project's version, e.g. "0.1.0".
const char* version();

// `git describe --always --dirty` of the source tree at build time ("unknown" outside a git checkout).
// Outputs record it next to the version.
const char* git_commit();

// The lines `autoguide --version` prints: version, commit, LibTorch version, whether CUDA is available.
std::string build_info();

}  // namespace autoguide
