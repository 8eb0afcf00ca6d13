// PNG files that carry their own parameters (a tEXt chunk), written atomically.
#pragma once
#include <torch/types.h>

#include <array>
#include <string>
#include <utility>
#include <vector>

namespace autoguide {

using TextChunks = std::vector<std::pair<std::string, std::string>>;

// image: uint8 [C,H,W] with C = 1 (grey) or 3 (RGB). Throws on other shapes.
std::string encode_png(const torch::Tensor& image, const TextChunks& text = {});
void write_png(const std::string& path, const torch::Tensor& image, const TextChunks& text = {});

// uint8 [C,H,W] from a PNG file: grey or RGB, any alpha dropped. Throws UsageError when it is not a readable
// PNG, or would decode to more than 1 GiB.
torch::Tensor read_png(const std::string& path);
// The same from the file's bytes; `name` appears in error messages.
torch::Tensor decode_png(const std::string& bytes, const std::string& name);

// [C,H,W] that read_png would return, from the file's header alone (cheap checks before long work).
std::array<int64_t, 3> png_shape(const std::string& path);
// The same from the first 33 bytes of a PNG (signature and IHDR chunk).
std::array<int64_t, 3> png_header_shape(const std::string& bytes, const std::string& name);

// The tEXt chunks before the image data (where encode_png puts them) of a PNG's first bytes; empty when they
// are not a PNG's. Never throws on malformed input (a report says what it could not read rather than fail).
TextChunks png_text(const std::string& bytes);
// The same from the first 64 KiB of a file (empty when it is missing).
TextChunks read_png_text(const std::string& path);

// True when `path` is a PNG that ends with its IEND chunk (a complete earlier output).
bool png_is_complete(const std::string& path);

}  // namespace autoguide
