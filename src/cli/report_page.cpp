#include "report_page.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "atomic_file.hpp"
#include "autoguide/error.hpp"
#include "autoguide/png.hpp"
#include "autoguide/seeds.hpp"
#include "image_output.hpp"
#include "json_input.hpp"

namespace fs = std::filesystem;

extern const unsigned char kAutoguideReportTemplate[];
extern const unsigned long kAutoguideReportTemplateSize;

namespace autoguide::cli {

namespace {

// Images shown per setting in the table (the grid shows the first seeds of every setting already).
constexpr size_t kThumbnails = 8;
constexpr const char* kPlaceholder = "@AUTOGUIDE_REPORT_DATA@";

// A path as a relative URL: '/'-separated, every byte outside the unreserved set percent-encoded.
std::string url_path(const fs::path& p) {
  static const char* hex = "0123456789ABCDEF";
  std::string url;
  for (unsigned char c : p.generic_string()) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      url.push_back(static_cast<char>(c));
    } else {
      url += '%';
      url += hex[c >> 4];
      url += hex[c & 15];
    }
  }
  return url;
}

// `file` (a path under the results' folder) as seen from the page's folder.
std::string link(const fs::path& file, const fs::path& page_dir) {
  return url_path(fs::weakly_canonical(file).lexically_relative(page_dir));
}

// A tune's tune.json: its parameters and the rounds saved so far (none yet is possible for a file written by
// hand; tune itself writes the file first when a round ends).
bool is_tune(const nlohmann::json& j) {
  return j.is_object() && j.contains("rounds") && j["rounds"].is_array() && j.contains("parameters") &&
         j["parameters"].is_object();
}

nlohmann::json read_results(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw UsageError(file.string() + " cannot be read; give a sweep's or tune's --out folder or compare's X.json");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = parse_json_input(text.str(), file.string(), "; rerun the command that wrote it");
  if (is_tune(j)) return j;
  if (!j.is_object() || !(j.contains("settings") || j.contains("rows")) ||
      !(j.contains("settings") ? j["settings"] : j["rows"]).is_array() ||
      (j.contains("settings") ? j["settings"] : j["rows"]).empty())
    throw UsageError(file.string() + " is not the results of a sweep (settings), a compare (rows) or a tune "
                     "(rounds); give a sweep's or tune's --out folder or compare's X.json");
  return j;
}

// Member `key` of `j` where j is an object holding one of that type, else `fallback`: tune.json may be cut short
// or edited by hand, and the page says what it lacks rather than failing on it.
template <typename T>
T get_or(const nlohmann::json& j, const char* key, T fallback) {
  if (!j.is_object() || !j.contains(key)) return fallback;
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    return fallback;
  }
}
const nlohmann::json& member(const nlohmann::json& j, const char* key) {
  static const nlohmann::json none;
  return j.is_object() && j.contains(key) ? j[key] : none;
}

// The parameters a PNG carries (its `parameters` tEXt chunk), or null.
nlohmann::json png_parameters(const fs::path& file) {
  for (const auto& [key, value] : read_png_text(file.string()))
    if (key == "parameters") {
      nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
      return j.is_discarded() ? nlohmann::json() : j;
    }
  return nullptr;
}

// The first seeds of the run, as its results record them.
std::vector<int64_t> shown_seeds(const nlohmann::json& results) {
  if (!results.contains("seeds") || !results["seeds"].is_string()) return {};
  try {
    std::vector<int64_t> seeds = parse_seed_list(results["seeds"].get<std::string>());
    if (seeds.size() > kThumbnails) seeds.resize(kThumbnails);
    return seeds;
  } catch (const UsageError&) {
    return {};
  }
}

// The images of `seeds` in run_dir/folder, as the page shows them: a link relative to the page and the PNG's
// parameters, or no link where the PNG is missing (its name goes to `absent`).
nlohmann::json folder_images(const fs::path& run_dir, const std::string& folder, const std::vector<int64_t>& seeds,
                             const fs::path& page_dir, std::vector<std::string>& absent) {
  nlohmann::json row = nlohmann::json::array();
  for (int64_t seed : folder.empty() ? std::vector<int64_t>{} : seeds) {
    const fs::path file = image_path((run_dir / folder).string(), seed, false);
    const std::string name = (fs::path(folder) / fs::path(file).filename()).generic_string();
    nlohmann::json image = {{"file", name}, {"seed", seed}, {"src", nullptr}, {"class", nullptr},
                            {"parameters", nullptr}};
    if (fs::is_regular_file(file)) {
      image["src"] = link(file, page_dir);
      image["parameters"] = png_parameters(file);
      if (image["parameters"].is_object() && image["parameters"].contains("class"))
        image["class"] = image["parameters"]["class"];
    } else if (std::find(absent.begin(), absent.end(), name) == absent.end()) {
      absent.push_back(name);
    }
    row.push_back(image);
  }
  return row;
}

std::string absent_note(const std::vector<std::string>& absent, const std::string& where) {
  std::string list;
  for (size_t k = 0; k < absent.size() && k < 5; ++k) list += (k ? ", " : "") + absent[k];
  if (absent.size() > 5) list += " and " + std::to_string(absent.size() - 5) + " more";
  return std::to_string(absent.size()) + " PNG" + (absent.size() > 1 ? "s are" : " is") + " missing from " + where +
         " (" + list + "): shown as empty boxes.";
}

// A tune's page data. The page draws everything from tune.json itself; what it cannot read from there are the
// images: those of the finals (each point's folder under images/, the first seeds of the run's seed list), or,
// while no final has been measured, those of each candidate's best point in the last saved round.
nlohmann::json tune_data(const nlohmann::json& tune, const fs::path& results_file, const fs::path& page_dir) {
  const fs::path run_dir = fs::weakly_canonical(fs::absolute(results_file)).parent_path();
  nlohmann::json missing = nlohmann::json::array();
  nlohmann::json data = {{"kind", "tune"}, {"results_file", link(results_file, page_dir)}, {"results", tune},
                         {"grid", nullptr}};
  std::vector<int64_t> seeds;
  try {
    seeds = parse_seed_list(get_or<std::string>(member(tune, "parameters"), "seeds", ""));
  } catch (const UsageError&) {
    missing.push_back("tune.json's parameters name no seed list: no images to show.");
  }
  // Folder -> how many of the seeds it holds; the first kThumbnails of those are shown.
  std::vector<std::pair<std::string, int64_t>> shown;
  auto show = [&](const std::string& folder, int64_t n) {
    if (folder.empty()) return;
    for (const auto& [f, m] : shown)
      if (f == folder) return;
    shown.emplace_back(folder, n);
  };
  const nlohmann::json& finals = member(tune, "finals");
  const nlohmann::json& rounds = tune["rounds"];
  if (finals.is_array() && !finals.empty()) {
    for (const auto& f : finals) show(get_or<std::string>(f, "folder", ""), get_or<int64_t>(f, "seeds", 0));
  } else if (!rounds.empty()) {
    const nlohmann::json& last = rounds.back();
    for (const auto& c : member(last, "candidates").is_array() ? member(last, "candidates") : nlohmann::json::array()) {
      if (!get_or<bool>(c, "measured", false)) continue;
      const double best = get_or<double>(c, "best_w", std::nan(""));
      for (const auto& e : member(c, "evaluations").is_array() ? member(c, "evaluations") : nlohmann::json::array())
        if (get_or<double>(e, "w", std::nan("")) == best)
          show(get_or<std::string>(e, "folder", ""), get_or<int64_t>(e, "seeds", get_or<int64_t>(last, "n", 0)));
    }
  }
  nlohmann::json images = nlohmann::json::object();
  std::vector<std::string> absent;
  for (const auto& [folder, n] : shown) {
    std::vector<int64_t> first(seeds.begin(), seeds.begin() + std::min<size_t>({seeds.size(), kThumbnails,
                                                                                  static_cast<size_t>(std::max<int64_t>(n, 0))}));
    images[folder] = folder_images(run_dir, folder, first, page_dir, absent);
  }
  data["images"] = images;
  if (!absent.empty())  // --reuse takes another run's features, not its PNGs: a likely cause, worth a word
    missing.push_back(absent_note(absent, "the tune's images/ folder") +
                      " Points taken from another tune with --reuse keep their PNGs in that run's images/.");

  const std::string state = get_or<std::string>(tune, "state", "");
  if (state != "done") {
    const int64_t n = rounds.empty() ? 0 : get_or<int64_t>(rounds.back(), "n", 0);
    missing.push_back("Unfinished tune: tune.json's state is \"" + (state.empty() ? std::string("missing") : state) +
                      "\" (killed, or still running) after " + std::to_string(rounds.size()) + " round" +
                      (rounds.size() == 1 ? "" : "s") +
                      (rounds.empty() ? std::string() : ", the last on " + std::to_string(n) + " seeds") +
                      ": no final estimate and no winner yet. Rerun the same tune with --resume to finish it.");
  }
  if (rounds.empty()) missing.push_back("No round of the search was saved: nothing measured to show.");
  data["missing"] = missing;
  return data;
}

}  // namespace

fs::path default_report_path(const fs::path& results_file) {
  if (results_file.filename() == "results.json" || results_file.filename() == "tune.json")
    return results_file.parent_path() / "report.html";
  return fs::path(results_file).replace_extension(".html");
}

nlohmann::json report_data(const fs::path& results_file, const fs::path& page) {
  const nlohmann::json results = read_results(results_file);
  if (is_tune(results)) return tune_data(results, results_file, fs::weakly_canonical(fs::absolute(page)).parent_path());
  const RunKind kind = results.contains("settings") ? RunKind::Sweep : RunKind::Compare;
  const fs::path run_dir = fs::weakly_canonical(fs::absolute(results_file)).parent_path();
  const fs::path page_dir = fs::weakly_canonical(fs::absolute(page)).parent_path();
  const nlohmann::json& settings = kind == RunKind::Sweep ? results["settings"] : results["rows"];
  nlohmann::json missing = nlohmann::json::array();

  nlohmann::json data = {{"kind", kind == RunKind::Sweep ? "sweep" : "compare"},
                         {"results_file", link(results_file, page_dir)},
                         {"results", results}};
  // The grid: sweep's grid.png; compare's X.png (its results name it as given on the command line).
  fs::path grid = kind == RunKind::Sweep ? run_dir / "grid.png" : fs::path();
  if (kind == RunKind::Compare) {
    if (results.contains("grid_layout") && results["grid_layout"].value("file", "") != "")
      grid = run_dir / results["grid_layout"]["file"].get<std::string>();
    else if (results.contains("grid") && results["grid"].is_string())
      grid = run_dir / fs::path(results["grid"].get<std::string>()).filename();
  }
  data["grid"] = nullptr;
  if (!grid.empty() && fs::is_regular_file(grid))
    data["grid"] = link(grid, page_dir);
  else
    missing.push_back("The grid image " + (grid.empty() ? std::string("(not named in the results)") : grid.filename().string()) +
                      " is missing beside " + results_file.filename().string() + ": no grid to show.");

  // Each setting's first images (sweep writes a folder of PNGs per setting; compare writes the grid only).
  const std::vector<int64_t> seeds = shown_seeds(results);
  nlohmann::json images = nlohmann::json::array();
  std::vector<std::string> absent;
  for (const auto& s : settings) images.push_back(folder_images(run_dir, s.value("folder", ""), seeds, page_dir, absent));
  data["images"] = images;
  if (!absent.empty()) missing.push_back(absent_note(absent, "the run's folders"));
  if (!results.contains("spaces") || !results["spaces"].is_array() || results["spaces"].empty())
    missing.push_back("No feature detector was given: this run measured no FD, so there is no chart and no "
                      "paired difference (rerun with --detector DET.pt --ref REF.npz).");
  if (settings.size() == 1)
    missing.push_back("One setting only: its FD is a single point, and there is nothing to compare it with.");
  data["missing"] = missing;
  return data;
}

std::string report_template() {
  return std::string(reinterpret_cast<const char*>(kAutoguideReportTemplate), kAutoguideReportTemplateSize);
}

std::string report_html(const nlohmann::json& data) {
  // Inside <script>, "</script>" or "<!--" in a string would end the element: '<', '>' and '&' go as JSON
  // escapes, which parse back to the same strings.
  std::string json;
  for (char c : data.dump(1, ' ', false, nlohmann::json::error_handler_t::replace)) {
    if (c == '<') json += "\\u003c";
    else if (c == '>') json += "\\u003e";
    else if (c == '&') json += "\\u0026";
    else json.push_back(c);
  }
  std::string page = report_template();
  const size_t at = page.find(kPlaceholder);
  if (at == std::string::npos) throw std::logic_error("report template without its data placeholder");
  return page.replace(at, std::string(kPlaceholder).size(), json);
}

void write_report(const fs::path& results_file, const fs::path& page) {
  const std::string html = report_html(report_data(results_file, page));
  write_file_atomic(page.string(), html);
}

}  // namespace autoguide::cli
