// Text, labelled grids, the FD plot, and the weight lists of `autoguide sweep`.
#include <gtest/gtest.h>

#include "option_values.hpp"
#include "autoguide/error.hpp"
#include "autoguide/grid.hpp"
#include "plot.hpp"
#include "autoguide/sweep.hpp"
#include "text.hpp"

using namespace autoguide;

namespace {

int64_t lit_pixels(const torch::Tensor& img, uint8_t background) { return (img != background).sum().item<int64_t>(); }

torch::Tensor numbered_tiles(int n, int c, int h, int w) {
  auto t = torch::zeros({n, c, h, w}, torch::kUInt8);
  for (int i = 0; i < n; ++i) t[i].fill_(10 * (i + 1));
  return t;
}

}  // namespace

TEST(Text, DrawsWithinItsBoxAndScales) {
  auto img = torch::zeros({3, 30, 120}, torch::kUInt8);
  const std::string s = "w=2.10 Ag0";
  draw_text(img, 4, 5, s, {255, 255, 255}, 1);
  const int64_t lit1 = lit_pixels(img, 0);
  EXPECT_GT(lit1, 3 * 40);
  // Nothing outside the text's box: columns [4, 4 + width), rows [5, 5 + height).
  EXPECT_EQ(lit_pixels(img.narrow(2, 0, 4), 0), 0);
  EXPECT_EQ(lit_pixels(img.narrow(1, 0, 5), 0), 0);
  EXPECT_EQ(lit_pixels(img.narrow(1, 5 + text_height(1), 30 - 5 - text_height(1)), 0), 0);
  EXPECT_EQ(lit_pixels(img.narrow(2, 4 + text_width(s, 1), 120 - 4 - text_width(s, 1)), 0), 0);
  // Scale 2 covers four times the pixels; the glyphs' quads are whole pixels.
  auto big = torch::zeros({1, 30, 200}, torch::kUInt8);
  draw_text(big, 0, 0, s, {255, 255, 255}, 2);
  EXPECT_EQ(lit_pixels(big, 0), 4 * lit1 / 3);
  EXPECT_EQ(text_width(s, 2), 2 * text_width(s, 1));
  // Every glyph is drawn whole (the font's buffer estimate is too small for some digits).
  auto zero = torch::zeros({1, 10, 10}, torch::kUInt8);
  draw_text(zero, 0, 0, "0", {1, 1, 1});
  EXPECT_EQ(lit_pixels(zero, 0), 16);  // the font's slashed zero, 4x7
  auto row = torch::zeros({1, 10, 200}, torch::kUInt8);
  draw_text(row, 0, 0, "0000000000", {1, 1, 1});
  for (int k = 0; k < 10; ++k)
    EXPECT_TRUE(torch::equal(row.narrow(2, k * text_width("0"), text_width("0")), zero.narrow(2, 0, text_width("0"))))
        << k;
}

TEST(Text, ClipsToViewsAndReplacesNonAscii) {
  auto img = torch::zeros({1, 12, 40}, torch::kUInt8);
  auto cell = img.narrow(2, 10, 8);
  draw_text(cell, 0, 0, "0123456789", {200, 0, 0});
  EXPECT_GT(lit_pixels(cell, 0), 0);
  EXPECT_EQ(lit_pixels(img.narrow(2, 0, 10), 0), 0);
  EXPECT_EQ(lit_pixels(img.narrow(2, 18, 22), 0), 0);
  auto a = torch::zeros({1, 12, 20}, torch::kUInt8), b = torch::zeros({1, 12, 20}, torch::kUInt8);
  draw_text(a, 0, 0, "\xc3\xa9", {9, 9, 9});
  draw_text(b, 0, 0, "??", {9, 9, 9});
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(LabelledGrid, TilesUnchangedBesideLabelMargins) {
  const int n = 6, cols = 3, h = 32, w = 32;
  auto tiles = numbered_tiles(n, 3, h, w);
  GridLabels labels{{"autoguidance w=2.10", "cfg w=1.40"}, {"0", "1", "2"}, "seed"};
  auto g = make_labelled_grid(tiles, cols, labels);
  const GridMargins m = label_margins(labels, h);
  EXPECT_EQ(label_scale(h), 1);
  EXPECT_EQ(m.left, text_width("autoguidance w=2.10") + 6);
  EXPECT_EQ(m.top, text_height(1) + 6);
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{3, m.top + 2 * h, m.left + cols * w}));
  EXPECT_TRUE(torch::equal(g.narrow(1, m.top, 2 * h).narrow(2, m.left, cols * w), make_grid(tiles, cols)));
  // Labels are white on the dark margin, and each lies in its own cell.
  auto margin = g.narrow(2, 0, m.left);
  EXPECT_GT((margin == 255).sum().item<int64_t>(), 0);
  EXPECT_EQ(((margin != 255) & (margin != 32)).sum().item<int64_t>(), 0);
  auto blank = make_labelled_grid(tiles, cols, {{"", ""}, {"", "", ""}, ""});
  EXPECT_EQ(blank.size(1), g.size(1));
  const auto row0 = [&](const torch::Tensor& t) { return t.narrow(1, m.top, h).narrow(2, 0, std::min<int64_t>(m.left, t.size(2))); };
  EXPECT_GT((row0(g) == 255).sum().item<int64_t>(), 0);
  EXPECT_FALSE(torch::equal(g.narrow(1, m.top + h, h).narrow(2, 0, m.left), row0(g)));
  auto header1 = g.narrow(1, 0, m.top).narrow(2, m.left + w, w);
  EXPECT_GT((header1 == 255).sum().item<int64_t>(), 0);
}

TEST(LabelledGrid, OnlyTheMarginsAsked) {
  auto tiles = numbered_tiles(4, 1, 8, 8);
  auto rows_only = make_labelled_grid(tiles, 2, {{"a", "b"}, {}, ""});
  EXPECT_EQ(rows_only.size(1), 16);
  EXPECT_EQ(rows_only.size(2), label_margins({{"a", "b"}, {}, ""}, 8).left + 16);
  auto cols_only = make_labelled_grid(tiles, 2, {{}, {"0", "1"}, "ignored"});
  EXPECT_EQ(cols_only.size(2), 16);
  EXPECT_EQ(cols_only.size(1), text_height(1) + 6 + 16);
  EXPECT_TRUE(torch::equal(make_labelled_grid(tiles, 2, {}), make_grid(tiles, 2)));
  // Large tiles get twice the text size.
  EXPECT_EQ(label_scale(64), 2);
  EXPECT_EQ(label_margins({{"x"}, {}, ""}, 64).left, text_width("x", 2) + 12);
  EXPECT_ANY_THROW(make_labelled_grid(tiles, 2, {{"only one"}, {}, ""}));
}

TEST(Plot, AxesCurvesAndLegend) {
  std::vector<Series> s = {{"a.pt", {1, 1.5, 2, 2.5}, {40, 20, 15, 30}}, {"b.pt", {1, 1.5, 2, 2.5}, {40, 35, 30, 38}}};
  auto img = line_plot(s, {"title", "w", "FD"}, 640, 400);
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{3, 400, 640}));
  // Each curve's colour (tab10 blue, orange) is present; one curve alone lacks the other's.
  auto has = [](const torch::Tensor& im, int r, int g, int b) {
    return ((im[0] == r) & (im[1] == g) & (im[2] == b)).sum().item<int64_t>();
  };
  EXPECT_GT(has(img, 31, 119, 180), 50);
  EXPECT_GT(has(img, 255, 127, 14), 50);
  auto one = line_plot({s[0]}, {"title", "w", "FD"}, 640, 400);
  EXPECT_EQ(has(one, 255, 127, 14), 0);
  EXPECT_GT(has(one, 0, 0, 0), 200);  // axes, ticks, text
  EXPECT_THROW(line_plot({{"x", {1}, {std::nan("")}}}, {}, 640, 400), UsageError);
  EXPECT_NO_THROW(line_plot({{"flat", {1, 2}, {5, 5}}}, {}, 640, 400));
}

TEST(Weights, ListsAndRanges) {
  EXPECT_EQ(autoguide::cli::parse_weights("1,1.5,2.1"), (std::vector<double>{1, 1.5, 2.1}));
  EXPECT_EQ(autoguide::cli::parse_weights("1:3:0.25").size(), 9u);
  EXPECT_EQ(autoguide::cli::parse_weights("1:3:0.25").back(), 3.0);
  // Decimal steps land on the values their spellings parse to, and STOP is included.
  const auto w = autoguide::cli::parse_weights("1:2:0.1");
  ASSERT_EQ(w.size(), 11u);
  EXPECT_EQ(w[3], 1.3);
  EXPECT_EQ(w[7], 1.7);
  EXPECT_EQ(w.back(), 2.0);
  EXPECT_EQ(autoguide::cli::parse_weights("1:1.05:0.1"), (std::vector<double>{1}));
  EXPECT_EQ(autoguide::cli::parse_weights("2:2:1"), (std::vector<double>{2}));
  EXPECT_EQ(autoguide::cli::parse_weights(" 1 , 2 "), (std::vector<double>{1, 2}));
  EXPECT_EQ(autoguide::cli::parse_weights("1:2:5e-1"), (std::vector<double>{1, 1.5, 2}));
}

TEST(Weights, BadInput) {
  for (const char* bad : {"", "1:3:0", "1:3:-0.5", "3:1:0.5", "abc", "1:2", "1:2:3:4", "1,,2", "1,", "-1", "nan",
                          "inf", "1:x:1", "1,2:3:1", "2,2", "0:1000:0.5", "1.5.2"})
    EXPECT_THROW(autoguide::cli::parse_weights(bad), UsageError) << bad;
}

TEST(Weights, Format) {
  EXPECT_EQ(format_weight(2.1), "2.10");
  EXPECT_EQ(format_weight(1), "1.00");
  EXPECT_EQ(format_weight(1.125), "1.125");
  EXPECT_EQ(format_weight(0.1 + 0.2), "0.30000000000000004");
}
