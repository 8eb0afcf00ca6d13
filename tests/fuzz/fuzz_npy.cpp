// .npy arrays: images and features for `fid`/`ref`, members of .npz statistics.
#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "autoguide/error.hpp"
#include "npy.hpp"
#include "same_bytes.hpp"
#include "fuzz_target.hpp"

static int fuzz_npy(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  torch::Tensor t;
  try {
    const auto header = autoguide::parse_npy_header(bytes, "fuzz.npy");
    t = autoguide::decode_npy(bytes, "fuzz.npy");
    if (t.sizes() != c10::IntArrayRef(header.shape) || t.scalar_type() != header.dtype) __builtin_trap();
  } catch (const autoguide::UsageError&) {
    return 0;
  }
  // What we write, we read back as the same array.
  if (!same_bytes(autoguide::decode_npy(autoguide::encode_npy(t), "again.npy"), t)) __builtin_trap();
  return 0;
}

const bool npy_registered = register_fuzz_target("npy", fuzz_npy);
