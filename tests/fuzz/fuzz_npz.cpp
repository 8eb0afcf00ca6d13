// .npz feature statistics (`fid --ref`, `sweep --ref`): ours, numpy's, or NVlabs/edm's reference files.
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "autoguide/error.hpp"
#include "npz.hpp"
#include "same_bytes.hpp"
#include "fuzz_target.hpp"

static int fuzz_npz(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  std::map<std::string, torch::Tensor> arrays;
  try {
    arrays = autoguide::decode_npz(bytes, "fuzz.npz");
  } catch (const autoguide::UsageError&) {
    return 0;
  }
  // What we write, we read back as the same arrays.
  autoguide::NpzArrays list(arrays.begin(), arrays.end());
  const auto again = autoguide::decode_npz(autoguide::encode_npz(list), "again.npz");
  if (again.size() != arrays.size()) __builtin_trap();
  for (const auto& [name, t] : arrays)
    if (!same_bytes(again.at(name), t)) __builtin_trap();
  return 0;
}

const bool npz_registered = register_fuzz_target("npz", fuzz_npz);
