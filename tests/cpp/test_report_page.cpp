// report.html's data (report_page.hpp) without a browser: the results embedded as they are in the file, images
// linked relative to the page with the metadata of their PNGs, what is missing said, text kept out of the
// markup; a tune's page, finished or killed mid-way; and the PNG text chunks it reads. tests/python/test_report.py opens the pages in Chromium.
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

// A tune's tune.json as `autoguide tune` writes it, cut to what the page reads: two rounds on seeds 0-3 and 0-7,
// candidate "b" dropped in the second; the finals on 8 seeds. `done`: false gives the file of a run killed after
// its first round.
nlohmann::json tune_results(bool done) {
  auto eval = [](double w, int n, const std::string& folder) {
    return nlohmann::json{{"w", w}, {"seeds", n}, {"folder", folder}, {"fd", {{"value", 10 + w}, {"lo", 9}, {"hi", 12}}}};
  };
  nlohmann::json a1 = {{"candidate", "a.pt"}, {"group", "autoguidance"}, {"measured", true}, {"best_w", 2},
                       {"leader", true}, {"dropped", false},
                       {"evaluations", {eval(1, 4, "images/unguided-w1.00"), eval(2, 4, "images/a-w2.00")}}};
  nlohmann::json b1 = {{"candidate", "b.pt"}, {"group", "autoguidance"}, {"measured", true}, {"best_w", 3},
                       {"leader", false}, {"dropped", false}, {"evaluations", {eval(3, 4, "images/b-w3.00")}}};
  nlohmann::json t = {{"parameters", {{"seeds", "0-7"}, {"first_num", 4}, {"final_num", 8}}},
                      {"spaces", {{{"name", "det"}, {"objective", true}}}},
                      {"rounds", {{{"n", 4}, {"images", 12}, {"candidates", {a1, b1}}}}},
                      {"state", "running"}};
  if (!done) return t;
  nlohmann::json b2 = b1;
  b2["dropped"] = true;
  t["rounds"].push_back({{"n", 8}, {"images", 12}, {"candidates", {a1, b2}}});
  t["finals"] = {{{"candidate", "a.pt"}, {"group", "autoguidance"}, {"w", 2}, {"rank", 1}, {"seeds", 8},
                  {"folder", "images/a-w2.00"}}};
  t["state"] = "done";
  return t;
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

TEST(ReportPage, TuneLinksTheFinalsImagesAndSaysWhenItIsUnfinished) {
  const fs::path run = fresh_dir("tune");
  for (const char* folder : {"images/unguided-w1.00", "images/a-w2.00", "images/b-w3.00"}) {
    fs::create_directories(run / folder);
    for (int seed = 0; seed < 8; ++seed) {
      if (std::string(folder) == "images/a-w2.00" && seed == 5) continue;  // missing
      write_png((run / folder / ("00000" + std::to_string(seed) + ".png")).string(), torch::zeros({3, 2, 2}, torch::kUInt8),
                {{"parameters", nlohmann::json{{"seed", seed}, {"class", seed % 3}}.dump()}});
    }
  }
  const nlohmann::json done = tune_results(true);
  write_text(run / "tune.json", done.dump(2));
  EXPECT_EQ(cli::default_report_path(run / "tune.json"), run / "report.html");
  nlohmann::json data = report_data(run / "tune.json", run / "report.html");
  EXPECT_EQ(data["kind"], "tune");
  EXPECT_EQ(data["results"], done);
  // The finals' images only: the first seeds of the run's list, as many as the final measured.
  ASSERT_EQ(data["images"].size(), 1u) << data["images"].dump();
  const nlohmann::json& shown = data["images"]["images/a-w2.00"];
  ASSERT_EQ(shown.size(), 8u);
  EXPECT_EQ(shown[7]["src"], "images/a-w2.00/000007.png");
  EXPECT_EQ(shown[7]["seed"], 7);
  EXPECT_EQ(shown[7]["class"], 1);
  EXPECT_TRUE(shown[5]["src"].is_null());
  std::string missing = data["missing"].dump();
  EXPECT_NE(missing.find("images/a-w2.00/000005.png"), std::string::npos) << missing;
  EXPECT_EQ(missing.find("Unfinished"), std::string::npos) << missing;
  EXPECT_EQ(report_html(data), report_html(report_data(run / "tune.json", run / "report.html")));

  // Killed after its first round: no finals, so the images of each candidate's best point in that round, on
  // the seeds it had; and a line saying the run is unfinished.
  write_text(run / "tune.json", tune_results(false).dump(2));
  data = report_data(run / "tune.json", run / "report.html");
  EXPECT_EQ(data["images"].size(), 2u) << data["images"].dump();
  EXPECT_EQ(data["images"]["images/a-w2.00"].size(), 4u);
  EXPECT_EQ(data["images"]["images/b-w3.00"][3]["src"], "images/b-w3.00/000003.png");
  missing = data["missing"].dump();
  EXPECT_NE(missing.find("Unfinished tune"), std::string::npos) << missing;
  EXPECT_NE(missing.find("after 1 round, the last on 4 seeds"), std::string::npos) << missing;
  // A tune.json that lost its rounds' contents still gives a page that says so.
  nlohmann::json empty = tune_results(false);
  empty["rounds"] = nlohmann::json::array();
  empty["parameters"].erase("seeds");
  write_text(run / "tune.json", empty.dump());
  data = report_data(run / "tune.json", run / "report.html");
  EXPECT_TRUE(data["images"].empty());
  EXPECT_NE(data["missing"].dump().find("No round of the search was saved"), std::string::npos);
  // Not a tune: rounds that are not a list.
  empty["rounds"] = 3;
  write_text(run / "tune.json", empty.dump());
  EXPECT_THROW(report_data(run / "tune.json", run / "report.html"), UsageError);
}
