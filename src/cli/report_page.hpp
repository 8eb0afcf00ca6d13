// report.html: one self-contained page of a sweep's, a compare's or a tune's results, to open from file:// (no
// network).
// The page is the template src/cli/report_template.html (compiled into the binary) with the run's data
// embedded as JSON: the results file verbatim, the PNGs it shows as links relative to the page, each image's
// seed, class and parameters read from its PNG, and a line for everything the page had to do without. It
// depends on the results and the images only (no clock, no host), so the same run gives the same page.
// The page's own script draws the charts (inline SVG) and the tables from that data.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace autoguide::cli {

// What a results file is the result of.
enum class RunKind { Sweep, Compare };

// The page's data. `results_file`: sweep's DIR/results.json, compare's X.json or tune's DIR/tune.json (finished
// or not); `page`: where the page goes (links are relative to its folder). Throws UsageError where the file is
// none of these.
nlohmann::json report_data(const std::filesystem::path& results_file, const std::filesystem::path& page);

// The page: the template with `data` embedded (safe inside <script>).
std::string report_html(const nlohmann::json& data);

// report_data + report_html, written atomically.
void write_report(const std::filesystem::path& results_file, const std::filesystem::path& page);

// Where a run's report goes by default: DIR/report.html for a sweep's or tune's folder, X.html beside compare's
// X.json.
std::filesystem::path default_report_path(const std::filesystem::path& results_file);

// The template as compiled in (generated from report_template.html by cmake/embed_file.cmake).
std::string report_template();

}  // namespace autoguide::cli
