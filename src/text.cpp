#include "text.hpp"

#include <algorithm>
#include <vector>

#include <stb_easy_font.h>

namespace autoguide {

namespace {

// stb_easy_font indexes its glyph table with (c - 32) unchecked, so anything else must not reach it.
std::string printable(const std::string& text) {
  std::string s = text;
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) > 126) c = '?';
  return s;
}

constexpr int kGlyphRows = 9;  // capitals span rows 0-6, descenders reach row 8

}  // namespace

int text_width(const std::string& text, int scale) {
  std::string s = printable(text);
  return stb_easy_font_width(s.data()) * scale;
}

int text_height(int scale) { return kGlyphRows * scale; }

void fill_rect(torch::Tensor& image, int x0, int y0, int x1, int y1, const Rgb& color) {
  TORCH_CHECK(image.dim() == 3 && image.scalar_type() == torch::kUInt8 && image.device().is_cpu(),
              "fill_rect expects a uint8 [C,H,W] CPU image");
  const int h = static_cast<int>(image.size(1)), w = static_cast<int>(image.size(2));
  x0 = std::max(x0, 0), y0 = std::max(y0, 0), x1 = std::min(x1, w), y1 = std::min(y1, h);
  if (x0 >= x1 || y0 >= y1) return;
  auto a = image.accessor<uint8_t, 3>();
  for (int64_t c = 0; c < image.size(0); ++c) {
    const uint8_t v = color[std::min<int64_t>(c, 2)];
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) a[c][y][x] = v;
  }
}

void draw_text(torch::Tensor& image, int x, int y, const std::string& text, const Rgb& color, int scale) {
  std::string s = printable(text);
  // stb_easy_font stops silently when its buffer is full (some glyphs take more than its "~270 bytes per
  // character"), so the buffer grows until a run leaves room to spare.
  std::vector<char> quads(s.size() * 512 + 128);
  int n = 0;
  while ((n = stb_easy_font_print(0, 0, s.data(), nullptr, quads.data(), static_cast<int>(quads.size()))) * 64 + 64 >
         static_cast<int>(quads.size()))
    quads.resize(quads.size() * 2);
  for (int q = 0; q < n; ++q) {
    // Four vertices of 16 bytes (x, y, z as float, RGBA); the quads are axis-aligned on whole pixels, so the
    // first and third corners bound the filled pixels.
    const float* v0 = reinterpret_cast<const float*>(quads.data() + q * 64);
    const float* v2 = reinterpret_cast<const float*>(quads.data() + q * 64 + 32);
    fill_rect(image, x + static_cast<int>(v0[0]) * scale, y + static_cast<int>(v0[1]) * scale,
              x + static_cast<int>(v2[0]) * scale, y + static_cast<int>(v2[1]) * scale, color);
  }
}

}  // namespace autoguide
