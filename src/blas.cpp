#include "blas.hpp"

#include <filesystem>
#include <fstream>
#include <iostream>

namespace autoguide {

std::string loaded_blas() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string name = std::filesystem::path(path).filename().string();
    // LibTorch's BLAS calls bind to libblas.so.3 (the alternative the system selects), even when another
    // library also maps libopenblas.so.0 directly.
    if (name.rfind("libblas.so", 0) == 0) {
      std::error_code ec;
      auto real = std::filesystem::canonical(path, ec);
      return ec ? path : real.string();
    }
  }
  return "";
}

bool is_reference_blas(const std::string& resolved_path) {
  // Debian installs netlib as .../blas/libblas.so.3 and OpenBLAS as .../openblas-*/libblas.so.3.
  return resolved_path.find("/blas/libblas.so") != std::string::npos &&
         resolved_path.find("openblas") == std::string::npos;
}

void warn_if_reference_blas() {
  static bool warned = false;
  if (warned) return;
  warned = true;
  const std::string blas = loaded_blas();
  if (is_reference_blas(blas))
    std::cerr << "autoguide: warning: the slow reference BLAS (" << blas
              << ") is loaded; install OpenBLAS (scripts/setup.sh installs libopenblas0-pthread) for ~27x faster "
                 "1x1 convolutions\n";
}

}  // namespace autoguide
