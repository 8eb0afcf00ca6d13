#include "autoguide/png.hpp"

#include <cstring>
#include <fstream>
#include <iterator>

#include "autoguide/atomic_file.hpp"
#include "autoguide/crc32.hpp"
#include "autoguide/error.hpp"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#include <stb_image.h>

namespace autoguide {

namespace {

void put_be32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
}

// tEXt: keyword (Latin-1, 1-79 bytes), NUL, text; CRC over type and data.
std::string text_chunk(const std::string& key, const std::string& value) {
  std::string body = "tEXt" + key + std::string(1, '\0') + value;
  std::string chunk;
  put_be32(chunk, static_cast<uint32_t>(body.size() - 4));
  chunk += body;
  put_be32(chunk, crc32(reinterpret_cast<const unsigned char*>(body.data()), body.size()));
  return chunk;
}

void write_to_string(void* ctx, void* data, int size) {
  static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

}  // namespace

std::string encode_png(const torch::Tensor& image, const TextChunks& text) {
  TORCH_CHECK(image.dim() == 3 && image.scalar_type() == torch::kUInt8, "encode_png expects uint8 [C,H,W]");
  const int c = static_cast<int>(image.size(0)), h = static_cast<int>(image.size(1)), w = static_cast<int>(image.size(2));
  if (c != 1 && c != 3) throw UsageError("cannot write a PNG with " + std::to_string(c) + " channels; use --npy");
  auto hwc = image.to(torch::kCPU).permute({1, 2, 0}).contiguous();
  std::string png;
  if (!stbi_write_png_to_func(write_to_string, &png, w, h, c, hwc.data_ptr<uint8_t>(), w * c))
    throw RuntimeFailure("PNG encoding failed");
  // Text chunks go right after IHDR (8-byte signature + 25-byte IHDR chunk).
  std::string chunks;
  for (const auto& [k, v] : text) chunks += text_chunk(k, v);
  png.insert(33, chunks);
  return png;
}

void write_png(const std::string& path, const torch::Tensor& image, const TextChunks& text) {
  write_file_atomic(path, encode_png(image, text));
}

torch::Tensor read_png(const std::string& path) {
  int w = 0, h = 0, c = 0;
  unsigned char* data = stbi_load(path.c_str(), &w, &h, &c, 0);
  if (!data) throw UsageError("cannot read image '" + path + "': " + stbi_failure_reason());
  if (c == 2 || c == 4) {  // drop alpha: our outputs are grey or RGB
    stbi_image_free(data);
    const int wanted = c - 1;
    int file_channels = 0;
    data = stbi_load(path.c_str(), &w, &h, &file_channels, wanted);
    c = wanted;
    if (!data) throw UsageError("cannot read image '" + path + "'");
  }
  auto t = torch::from_blob(data, {h, w, c}, torch::kUInt8).permute({2, 0, 1}).clone();
  stbi_image_free(data);
  return t;
}

std::array<int64_t, 3> png_shape(const std::string& path) {
  int w = 0, h = 0, c = 0;
  if (!stbi_info(path.c_str(), &w, &h, &c)) throw UsageError("cannot read image '" + path + "': " + stbi_failure_reason());
  if (c == 2 || c == 4) --c;  // as read_png drops alpha
  return {c, h, w};
}

bool png_is_complete(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static const char sig[8] = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};
  return bytes.size() >= 20 && std::memcmp(bytes.data(), sig, 8) == 0 &&
         bytes.compare(bytes.size() - 8, 4, "IEND") == 0;
}

}  // namespace autoguide
