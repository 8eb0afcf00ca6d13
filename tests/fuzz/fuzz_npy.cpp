// .npy arrays: images and features for `fid`/`ref`, members of .npz statistics.
#include <torch/torch.h>

#include <cstddef>
#include <cstring>
#include <cstdint>
#include <string>

#include "autoguide/error.hpp"
#include "autoguide/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
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
  const auto again = autoguide::decode_npy(autoguide::encode_npy(t), "again.npy");
  if (again.sizes() != t.sizes() || again.scalar_type() != t.scalar_type() ||
      std::memcmp(again.data_ptr(), t.data_ptr(), t.nbytes()) != 0)
    __builtin_trap();
  return 0;
}
