// PNG images of an image folder (`fid --images`, `ref --images`): their header is read for every file before
// any pixels (ImageSet::open), then each file is decoded (ImageSet::load); the two must agree. A report reads
// the text chunks of any file (png_text): never a crash, and what encode_png wrote comes back.
#include <torch/torch.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "autoguide/error.hpp"
#include "autoguide/png.hpp"
#include "fuzz_target.hpp"

static int fuzz_png(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  std::array<int64_t, 3> shape{};
  bool header_ok = true;
  try {
    shape = autoguide::png_header_shape(bytes.substr(0, 33), "fuzz.png");
  } catch (const autoguide::UsageError&) {
    header_ok = false;
  }
  (void)autoguide::png_text(bytes);
  torch::Tensor image;
  try {
    image = autoguide::decode_png(bytes, "fuzz.png");
  } catch (const autoguide::UsageError&) {
    return 0;
  }
  // A decodable file has a readable header announcing exactly the decoded shape.
  if (!header_ok || image.size(0) != shape[0] || image.size(1) != shape[1] || image.size(2) != shape[2])
    __builtin_trap();
  if (!torch::equal(autoguide::decode_png(autoguide::encode_png(image), "again.png"), image)) __builtin_trap();
  const autoguide::TextChunks text = {{"parameters", bytes.substr(0, 64)}};
  if (autoguide::png_text(autoguide::encode_png(image, text)) != text) __builtin_trap();
  return 0;
}

const bool png_registered = register_fuzz_target("png", fuzz_png);
