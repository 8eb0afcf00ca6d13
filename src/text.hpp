// Text drawn into uint8 images with no font file: stb_easy_font's built-in ASCII glyphs (7-pixel capitals,
// 2-pixel descenders), rasterised from its axis-aligned quads and scaled by a whole factor.
#pragma once
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <string>

namespace autoguide {

using Rgb = std::array<uint8_t, 3>;

// Pixels one line of `text` advances (including the gap after the last glyph) and occupies vertically.
int text_width(const std::string& text, int scale = 1);
int text_height(int scale = 1);

// Draws `text` with its top-left corner at (x, y) into image uint8 [C,H,W] on the CPU (a view is fine; drawing
// is clipped to it, so a narrowed view clips to a cell). Grey images (C = 1) take the colour's first value.
// Characters outside printable ASCII are drawn as '?'.
void draw_text(torch::Tensor& image, int x, int y, const std::string& text, const Rgb& color, int scale = 1);

// Fills the rectangle [x0, x1) x [y0, y1), clipped to the image.
void fill_rect(torch::Tensor& image, int x0, int y0, int x1, int y1, const Rgb& color);

}  // namespace autoguide
