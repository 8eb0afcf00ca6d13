#include "autoguide/png.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "atomic_file.hpp"
#include "crc32.hpp"
#include "autoguide/error.hpp"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_NO_STDIO  // files are read here, so that the same bytes are checked and decoded
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
  if (c != 1 && c != 3) throw UsageError("cannot write a PNG with " + std::to_string(c) + " channels (a PNG holds 1 or 3)");
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

namespace {

// Decoded images larger than this are refused from their header: a few bytes of PNG can announce 2^31 x 2^31
// pixels, which stb_image would try to allocate. 1 GiB holds a 16384 x 16384 RGB image.
constexpr uint64_t kMaxImageBytes = uint64_t(1) << 30;

uint32_t be32(const std::string& b, size_t pos) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<unsigned char>(b[pos + i]);
  return v;
}

std::string read_bytes(const std::string& path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read image '" + path + "'");
  std::string bytes;
  char buf[1 << 16];
  while (bytes.size() < limit) {
    in.read(buf, static_cast<std::streamsize>(std::min(sizeof buf, limit - bytes.size())));
    if (in.gcount() <= 0) break;
    bytes.append(buf, static_cast<size_t>(in.gcount()));
  }
  return bytes;
}

}  // namespace

std::array<int64_t, 3> png_header_shape(const std::string& bytes, const std::string& name) {
  auto bad = [&](const std::string& why) { return UsageError("cannot read image '" + name + "': " + why); };
  static const char sig[8] = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};
  if (bytes.size() < 33 || std::memcmp(bytes.data(), sig, 8) != 0) throw bad("not a PNG file");
  if (be32(bytes, 8) != 13 || bytes.compare(12, 4, "IHDR") != 0) throw bad("its first chunk is not IHDR");
  const uint32_t w = be32(bytes, 16), h = be32(bytes, 20);
  const int depth = static_cast<unsigned char>(bytes[24]), type = static_cast<unsigned char>(bytes[25]);
  // Channels as read_png returns them: grey (types 0, 4) or RGB (2, 3 palette, 6), any alpha dropped.
  int c = 0;
  if ((type == 0 && (depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16)) ||
      (type == 4 && (depth == 8 || depth == 16)))
    c = 1;
  else if (((type == 2 || type == 6) && (depth == 8 || depth == 16)) ||
           (type == 3 && (depth == 1 || depth == 2 || depth == 4 || depth == 8)))
    c = 3;
  if (c == 0) throw bad("unknown colour type " + std::to_string(type) + " or bit depth " + std::to_string(depth));
  if (w == 0 || h == 0 || w > INT32_MAX || h > INT32_MAX) throw bad("impossible size");
  if (uint64_t(w) * h * c > kMaxImageBytes)
    throw bad(std::to_string(w) + "x" + std::to_string(h) + " pixels is larger than autoguide reads (1 GiB)");
  return {c, static_cast<int64_t>(h), static_cast<int64_t>(w)};
}

torch::Tensor decode_png(const std::string& bytes, const std::string& name) {
  const auto shape = png_header_shape(bytes, name);
  if (bytes.size() > size_t(INT32_MAX)) throw UsageError("cannot read image '" + name + "': file larger than 2 GiB");
  const int c = static_cast<int>(shape[0]);
  int w = 0, h = 0, file_channels = 0;
  // Asking stb_image for c channels drops any alpha (our outputs are grey or RGB).
  unsigned char* data = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                                              static_cast<int>(bytes.size()), &w, &h, &file_channels, c);
  if (!data) throw UsageError("cannot read image '" + name + "': " + stbi_failure_reason());
  auto t = torch::from_blob(data, {h, w, c}, torch::kUInt8).permute({2, 0, 1}).clone();
  stbi_image_free(data);
  return t;
}

torch::Tensor read_png(const std::string& path) {
  return decode_png(read_bytes(path, std::numeric_limits<size_t>::max()), path);
}

std::array<int64_t, 3> png_shape(const std::string& path) { return png_header_shape(read_bytes(path, 33), path); }

bool png_is_complete(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static const char sig[8] = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};
  return bytes.size() >= 20 && std::memcmp(bytes.data(), sig, 8) == 0 &&
         bytes.compare(bytes.size() - 8, 4, "IEND") == 0;
}

}  // namespace autoguide

namespace autoguide {

TextChunks read_png_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(65536, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  return png_text(head);
}

TextChunks png_text(const std::string& head) {
  TextChunks text;
  if (head.size() < 8 || head.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) return text;
  auto be32 = [&](size_t at) {
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) v = (v << 8) | static_cast<unsigned char>(head[at + k]);
    return v;
  };
  for (size_t at = 8; at + 8 <= head.size();) {
    const uint32_t length = be32(at);
    const std::string type = head.substr(at + 4, 4);
    if (type == "IDAT" || type == "IEND" || length > head.size() - at - 8) break;
    if (type == "tEXt") {
      const std::string body = head.substr(at + 8, length);
      const size_t nul = body.find('\0');
      if (nul != std::string::npos) text.emplace_back(body.substr(0, nul), body.substr(nul + 1));
    }
    at += 12 + static_cast<size_t>(length);
  }
  return text;
}

}  // namespace autoguide
