// Which BLAS the process runs on. Debian's LibTorch calls whatever libblas.so.3 the system selects; the
// netlib reference BLAS makes every 1x1 convolution ~27x slower than OpenBLAS.
#pragma once
#include <string>

namespace autoguide {

// Resolved path of the libblas.so.3 mapped into this process ("" when none is mapped).
std::string loaded_blas();

// True when the mapped BLAS is the netlib reference implementation.
bool is_reference_blas(const std::string& resolved_path);

// Prints one warning on stderr (once per process) when the reference BLAS is loaded.
void warn_if_reference_blas();

}  // namespace autoguide
