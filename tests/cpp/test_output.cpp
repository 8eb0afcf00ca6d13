#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "autoguide/decoder.hpp"
#include "autoguide/grid.hpp"
#include "npy.hpp"
#include "autoguide/png.hpp"
#include "sha256.hpp"

using namespace autoguide;
namespace fs = std::filesystem;

namespace {
std::string temp_dir() {
  auto d = fs::temp_directory_path() / ("autoguide_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d.string();
}
}  // namespace

TEST(DecodeRgb, TruncatesLikeEdm2) {
  // x*127.5+128 then clip and truncate: -1 -> 0.5 -> 0; 0 -> 128; 1 -> 255.5 -> 255; 0.004 -> 128.51 -> 128
  auto x = torch::tensor({-2.0f, -1.0f, 0.0f, 0.004f, 0.0079f, 0.99f, 1.0f, 3.0f}).view({1, 1, 1, 8});
  auto p = decode_rgb(x).flatten();
  std::vector<int> want = {0, 0, 128, 128, 129, 254, 255, 255};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(p[i].item<int>(), want[i]) << i;
}

TEST(Png, RoundTripsPixelsAndCarriesText) {
  auto dir = temp_dir();
  auto img = torch::randint(0, 256, {3, 5, 7}, torch::kUInt8);
  const std::string path = dir + "/x.png";
  write_png(path, img, {{"parameters", "{\"seed\": 3}"}});
  EXPECT_TRUE(torch::equal(read_png(path), img));
  EXPECT_TRUE(png_is_complete(path));
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(bytes.find(std::string("tEXtparameters\0{\"seed\": 3}", 26)), std::string::npos);
  auto grey = torch::randint(0, 256, {1, 4, 4}, torch::kUInt8);
  write_png(dir + "/g.png", grey);
  EXPECT_TRUE(torch::equal(read_png(dir + "/g.png"), grey));
  // A cut-off file is not a complete earlier result.
  std::ofstream(dir + "/cut.png", std::ios::binary) << bytes.substr(0, bytes.size() - 12);
  EXPECT_FALSE(png_is_complete(dir + "/cut.png"));
  fs::remove_all(dir);
}

TEST(Grid, PlacesTilesRowMajor) {
  auto imgs = torch::zeros({5, 1, 2, 3}, torch::kUInt8);
  for (int i = 0; i < 5; ++i) imgs[i].fill_(i + 1);
  auto g = make_grid(imgs, 2);
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{1, 6, 6}));
  EXPECT_EQ(g[0][0][0].item<int>(), 1);
  EXPECT_EQ(g[0][0][3].item<int>(), 2);
  EXPECT_EQ(g[0][2][0].item<int>(), 3);
  EXPECT_EQ(g[0][4][0].item<int>(), 5);
  EXPECT_EQ(g[0][4][3].item<int>(), 0);  // empty cell
}

TEST(Npy, RoundTripsAndRejectsTruncation) {
  auto dir = temp_dir();
  auto t = torch::randn({2, 3, 4});
  write_npy(dir + "/a.npy", t);
  EXPECT_TRUE(torch::equal(read_npy(dir + "/a.npy"), t));
  auto bytes = encode_npy(t);
  EXPECT_EQ((bytes.size() - t.nbytes()) % 64, 0u);
  std::ofstream(dir + "/cut.npy", std::ios::binary) << bytes.substr(0, bytes.size() - 4);
  EXPECT_ANY_THROW(read_npy(dir + "/cut.npy"));
  fs::remove_all(dir);
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(std::string(1000, 'a')).substr(0, 16), "41edece42d63e8d9");
}
