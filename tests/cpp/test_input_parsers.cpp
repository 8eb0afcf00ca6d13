// Parsers of outside input on hostile cases that fuzzing found or that the sanitizers guard: each refuses with a
// UsageError naming the problem (or reads the input right), never another exception, a crash or undefined
// behaviour. Files the fuzzers start from are in tests/fuzz/corpus.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "option_values.hpp"
#include "autoguide/decoder.hpp"
#include "autoguide/error.hpp"
#include "json_input.hpp"
#include "autoguide/model.hpp"
#include "npy.hpp"
#include "npz.hpp"
#include "autoguide/png.hpp"
#include "autoguide/preset.hpp"
#include "autoguide/schedule.hpp"
#include "autoguide/seeds.hpp"
#include "autoguide/sweep.hpp"

using namespace autoguide;

namespace {

std::string corpus(const std::string& name) {
  std::ifstream in(std::string(AUTOGUIDE_SOURCE_DIR) + "/tests/fuzz/corpus/" + name, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The message of the UsageError that f throws ("" and a test failure when it throws none).
template <typename F>
std::string refusal(F f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no UsageError";
  return "";
}

bool says(const std::string& message, const std::string& part) { return message.find(part) != std::string::npos; }

std::string npy_with_header(const std::string& dict, const std::string& data = "") {
  std::string header = dict;
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header + data;
}

std::string f32_bytes(int n) { return std::string(static_cast<size_t>(4 * n), '\0'); }

}  // namespace

TEST(SeedListInput, LongAndHugeListsAreRefusedWithoutRecursionOrAllocation) {
  // 100,000 digits overflowed the stack of std::regex; now they are "too large", in a short message.
  const std::string message = refusal([] { parse_seed_list(std::string(100000, '7')); });
  EXPECT_TRUE(says(message, "is too large")) << message;
  EXPECT_LT(message.size(), 200u);
  EXPECT_EQ(parse_seed_list("0-9999999").size(), 10000000u);  // the cap itself
  EXPECT_TRUE(says(refusal([] { parse_seed_list("0-9999999,10000000"); }), "more than 10000000 seeds"));
  EXPECT_TRUE(says(refusal([] { parse_seed_list("0-99999999999,1-99999999999"); }), "more than 10000000 seeds"));
  EXPECT_TRUE(says(refusal([] { parse_seed_list("1-2-3"); }), "is not a non-negative integer or range"));
}

TEST(NpyInput, HeaderShapesAsNumpyWritesThem) {
  EXPECT_EQ(decode_npy(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", f32_bytes(5)),
                       "a").sizes(),
            c10::IntArrayRef({5}));
  EXPECT_EQ(decode_npy(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", f32_bytes(1)),
                       "a").dim(),
            0);
  EXPECT_EQ(decode_npy(npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
                                       f32_bytes(6)),
                       "a").sizes(),
            c10::IntArrayRef({2, 3}));
  // An empty array has no data pointer: copying 0 bytes from it was undefined behaviour (UBSan, fuzzing).
  EXPECT_EQ(decode_npy(corpus("npy/empty.npy"), "empty").sizes(), c10::IntArrayRef({0, 3}));
}

TEST(NpyInput, MalformedAndOverflowingHeadersAreRefused) {
  auto header = [](const std::string& shape, const std::string& data = "") {
    return npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }", data);
  };
  EXPECT_TRUE(says(refusal([&] { decode_npy(header("(,)"), "a"); }), "malformed shape"));
  EXPECT_TRUE(says(refusal([&] { decode_npy(header("(2,,3)"), "a"); }), "malformed shape"));
  EXPECT_TRUE(says(refusal([&] { decode_npy(header("(99999999999999999999,)"), "a"); }), "shape too large"));
  // 2^58 x 64 x 4 float32 is 2^68 bytes: the product wrapped to 0 and matched an empty data section.
  EXPECT_TRUE(says(refusal([&] { decode_npy(header("(288230376151711744, 64, 4)"), "a"); }),
                   "does not match the shape"));
  const std::string long_descr = npy_with_header("{'descr': '" + std::string(60000, 'x') + "', 'shape': (1,), }");
  EXPECT_TRUE(says(refusal([&] { decode_npy(long_descr, "a"); }), "is not supported"));
  EXPECT_TRUE(says(refusal([] { decode_npy(corpus("npy/fortran.npy"), "f"); }), "Fortran order"));
}

TEST(NpzInput, NumpysArchivesReadAndDamagedOnesAreRefused) {
  const auto arrays = decode_npz(corpus("npz/stats.npz"), "stats.npz");
  EXPECT_EQ(arrays.at("mu").sizes(), c10::IntArrayRef({3}));
  EXPECT_EQ(arrays.at("num_images").item<int64_t>(), 10);
  // numpy.savez_compressed: the deflated member reads back as numpy wrote it (arange(3)).
  EXPECT_TRUE(torch::equal(decode_npz(corpus("npz/compressed.npz"), "c").at("mu"), torch::arange(3, torch::kFloat64)));
  const std::string stats = corpus("npz/stats.npz");
  EXPECT_TRUE(says(refusal([&] { decode_npz(stats.substr(0, stats.size() - 30), "cut"); }), "not a usable .npz"));
  EXPECT_EQ(decode_npz(corpus("npz/mixed.npz"), "m").size(), 1u);  // the text member is not an array
}

TEST(PngInput, HeaderShapeIsTheDecodedShapeForEveryColourType) {
  for (const auto& [name, channels] : std::vector<std::pair<std::string, int64_t>>{
           {"grey", 1}, {"grey_alpha", 1}, {"grey16", 1}, {"bilevel", 1}, {"rgb", 3}, {"rgba", 3},
           {"palette", 3}, {"palette_trns", 3}, {"interlaced", 3}}) {
    const std::string bytes = corpus("png/" + name + ".png");
    const auto shape = png_header_shape(bytes.substr(0, 33), name);
    const auto image = decode_png(bytes, name);
    EXPECT_EQ(shape[0], channels) << name;
    EXPECT_EQ(image.sizes(), c10::IntArrayRef({shape[0], shape[1], shape[2]})) << name;
  }
}

TEST(PngInput, HugeOrDamagedImagesAreRefusedBeforeDecoding) {
  std::string huge = corpus("png/rgb.png");
  for (int i = 0; i < 4; ++i) huge[16 + i] = huge[20 + i] = i == 1 ? '\x01' : '\0';  // 65536 x 65536 pixels
  EXPECT_TRUE(says(refusal([&] { png_header_shape(huge, "huge"); }), "larger than autoguide reads"));
  EXPECT_TRUE(says(refusal([&] { decode_png(huge, "huge"); }), "larger than autoguide reads"));
  const std::string rgb = corpus("png/rgb.png");
  EXPECT_TRUE(says(refusal([&] { decode_png(rgb.substr(0, 40), "cut"); }), "cannot read image 'cut'"));
  EXPECT_TRUE(says(refusal([] { decode_png("GIF89a", "gif"); }), "not a PNG file"));
}

TEST(JsonInput, DepthNumbersAndEncodingAreChecked) {
  const auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_NO_THROW(parse_json_input(nested(kMaxJsonDepth), "x", ""));
  EXPECT_EQ(refusal([&] { parse_json_input(nested(kMaxJsonDepth + 1), "x", "; fix"); }),
            "x is not valid JSON (nested deeper than 64 levels); fix");
  // nlohmann reports a number beyond double as out_of_range, not parse_error (fuzzing found it escaping).
  EXPECT_EQ(refusal([] { parse_json_input("[3E311]", "x", ""); }), "x is not valid JSON (a number out of range)");
  EXPECT_TRUE(says(refusal([] { parse_json_input("[\"\xff\"]", "x", ""); }), "syntax error at byte"));
}

TEST(PresetInput, EntriesAreTypeChecked) {
  const auto presets = parse_presets(R"({"presets": {"a": {"net": "a.pt", "guidance": 2.5}}})", "p.json");
  ASSERT_EQ(presets.size(), 1u);
  EXPECT_EQ(presets[0].guidance, 2.5);
  EXPECT_TRUE(says(refusal([] { parse_presets(R"({"presets": {"a": 3}})", "p.json"); }), "is not a JSON object"));
  EXPECT_TRUE(says(refusal([] { parse_presets(R"({"presets": {"a": {"guidance": "2"}}})", "p.json"); }),
                   "guidance is not a number"));
  EXPECT_TRUE(says(refusal([] { parse_presets(R"({"presets": {"a": {"guidance": -1}}})", "p.json"); }),
                   "must be a finite number >= 0"));
  EXPECT_TRUE(parse_presets(R"([1, 2])", "p.json").empty());
}

TEST(ModelMetadataInput, NumbersAreCheckedBeforeAnyCast) {
  auto meta = [](const std::string& fields) {
    return R"({"format_version": 1, "img_channels": 3, "label_dim": 10, "sigma_data": 0.5, )" + fields + "}";
  };
  EXPECT_EQ(parse_model_info(meta(R"("img_resolution": 8)"), "m").img_resolution, 8);
  // A double cast to int is undefined beyond int's range (UBSan's float-cast-overflow), and wrapped before.
  EXPECT_TRUE(says(refusal([&] { parse_model_info(meta(R"("img_resolution": 1e300)"), "m"); }), "not an integer"));
  EXPECT_TRUE(says(refusal([&] { parse_model_info(meta(R"("img_resolution": 4294967304)"), "m"); }), "not an integer"));
  EXPECT_TRUE(says(refusal([&] { parse_model_info(meta(R"("img_resolution": 100000)"), "m"); }), "impossible shapes"));
  const auto scale = [&](const std::string& values) {
    return meta(R"("img_resolution": 8, "encoder": {"type": "vae", "scale": )" + values + ", \"bias\": [0,0,0]}");
  };
  EXPECT_TRUE(says(refusal([&] { parse_model_info(scale("[1, 0, 1]"), "m"); }), "not a non-zero float32 number"));
  EXPECT_TRUE(says(refusal([&] { parse_model_info(scale("[1, 1e39, 1]"), "m"); }), "not a non-zero float32"));
  const std::string odd = refusal([&] {
    parse_model_info(meta(R"("img_resolution": 8, "encoder": {"type": "a\nb"})"), "m");
  });
  EXPECT_TRUE(says(odd, "unknown encoder type \"a\\nb\"")) << odd;  // escaped: the message stays one line
  EXPECT_TRUE(says(refusal([] { parse_vae_info(R"({"kind": "vae", "format_version": 4294967297})", "v"); }),
                   "lacks an integer 'format_version'"));
}

TEST(OptionValueInput, HugeRangeStepsAndIndicesAreHandled) {
  // A step of ~9e31 made llround overflow and the range loop add past LLONG_MAX (UBSan, fuzzing).
  EXPECT_EQ(autoguide::cli::parse_weights("1:88888:88888888888888888888888888888885"), std::vector<double>({1.0}));
  EXPECT_TRUE(says(refusal([] { autoguide::cli::parse_interval_steps("99999999999,1"); }), "is not two step indices"));
}
