// report.html's data (report_page.hpp) without a browser: the results embedded as they are in the file, images
// linked relative to the page with the metadata of their PNGs, what is missing said, text kept out of the
// markup; and the PNG text chunks it reads. tests/python/test_report.py opens the pages in Chromium.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "autoguide/error.hpp"
#include "autoguide/png.hpp"
#include "report_page.hpp"

using namespace autoguide;
using autoguide::cli::report_data;
using autoguide::cli::report_html;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("autoguide_report_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// A sweep's results.json with two settings, one folder each, seeds 0-2 (the PNGs are the caller's).
nlohmann::json sweep_results() {
  nlohmann::json s1 = {{"guide", "g.pt"}, {"w", 1}, {"mode", "none"}, {"folder", "unguided-w1.00"},
                       {"label", "g.pt w=1.00"}, {"images", 3}, {"seconds", 0.5}};
  nlohmann::json s2 = {{"guide", "g.pt"}, {"w", 2}, {"mode", "autoguidance"}, {"folder", "g-w2.00"},
                       {"label", "g.pt w=2.00 </script><!--"}, {"images", 3}, {"seconds", 0.25}};
  return {{"net", "main.pt"}, {"seeds", "0-2"}, {"settings", {s1, s2}}};
}

// The JSON between the data element's tags, as the page's script reads it.
nlohmann::json embedded(const std::string& html) {
  const std::string open = "<script id=\"report-data\" type=\"application/json\">";
  const size_t start = html.find(open) + open.size();
  return nlohmann::json::parse(html.substr(start, html.find("</script>", start) - start));
}

}  // namespace

TEST(PngText, ReadsWhatEncodePngWrote) {
  const auto img = torch::zeros({3, 2, 2}, torch::kUInt8);
  const TextChunks text = {{"parameters", "{\"seed\": 7}"}, {"other", std::string("a\0b", 3)}};
  EXPECT_EQ(png_text(encode_png(img, text)), text);
  EXPECT_TRUE(png_text("not a png").empty());
  std::string truncated = encode_png(img, text).substr(0, 40);
  EXPECT_TRUE(png_text(truncated).empty());  // the chunk does not fit: nothing, no throw
  EXPECT_TRUE(read_png_text("/nonexistent/x.png").empty());
}

TEST(ReportPage, EmbedsTheResultsAndLinksImagesRelativeToThePage) {
  const fs::path run = fresh_dir("sweep");
  const nlohmann::json results = sweep_results();
  write_text(run / "results.json", results.dump(2));
  for (const char* folder : {"unguided-w1.00", "g-w2.00"})
    for (int seed : {0, 1, 2}) {
      fs::create_directories(run / folder);
      if (std::string(folder) == "g-w2.00" && seed == 1) continue;  // missing
      write_png((run / folder / ("00000" + std::to_string(seed) + ".png")).string(),
                torch::zeros({3, 2, 2}, torch::kUInt8),
                {{"parameters", nlohmann::json{{"seed", seed}, {"class", seed + 3}}.dump()}});
    }
  const nlohmann::json data = report_data(run / "results.json", run / "report.html");
  EXPECT_EQ(data["kind"], "sweep");
  EXPECT_EQ(data["results"], results);
  EXPECT_EQ(data["images"][0][2]["src"], "unguided-w1.00/000002.png");
  EXPECT_EQ(data["images"][0][2]["class"], 5);
  EXPECT_TRUE(data["images"][1][1]["src"].is_null());
  const std::string missing = data["missing"].dump();
  EXPECT_NE(missing.find("g-w2.00/000001.png"), std::string::npos) << missing;
  EXPECT_NE(missing.find("grid.png"), std::string::npos) << missing;
  EXPECT_NE(missing.find("No feature detector"), std::string::npos) << missing;
  // A page elsewhere links up to the run.
  fs::create_directories(run / "pages");
  EXPECT_EQ(report_data(run / "results.json", run / "pages" / "r.html")["images"][0][0]["src"],
            "../unguided-w1.00/000000.png");
  // Inside the page, text from the results cannot end the data element, and reads back the same.
  const std::string html = report_html(data);
  EXPECT_EQ(html.find("</script><!--"), std::string::npos);
  EXPECT_EQ(embedded(html), data);
  EXPECT_EQ(html.find("@AUTOGUIDE_REPORT_DATA@"), std::string::npos);
  EXPECT_EQ(report_html(data), html);  // nothing but the data goes in: the same data, the same page
}

TEST(ReportPage, RefusesWhatIsNotAResultsFile) {
  const fs::path run = fresh_dir("bad");
  write_text(run / "x.json", "{\"fd\": 1}");
  EXPECT_THROW(report_data(run / "x.json", run / "x.html"), UsageError);
  write_text(run / "y.json", "[1, 2");
  EXPECT_THROW(report_data(run / "y.json", run / "y.html"), UsageError);
  EXPECT_THROW(report_data(run / "none.json", run / "n.html"), UsageError);
  EXPECT_EQ(cli::default_report_path("out/s/results.json"), fs::path("out/s/report.html"));
  EXPECT_EQ(cli::default_report_path("out/cmp.json"), fs::path("out/cmp.html"));
}
