// `autoguide report RUN`: report.html from a finished sweep (its --out folder) or compare (its X.json), the same
// page that `--report` writes at the end of the run.
#include <filesystem>
#include <iostream>

#include "atomic_file.hpp"
#include "autoguide/error.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "report_page.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

namespace {

// RUN as a results file: a folder's results.json, or the JSON file given.
fs::path results_file(const std::string& run) {
  if (fs::is_directory(run)) {
    const fs::path f = fs::path(run) / "results.json";
    if (!fs::is_regular_file(f))
      throw UsageError(run + " holds no results.json; give the --out folder of a finished sweep, or compare's X.json");
    return f;
  }
  if (!fs::is_regular_file(run))
    throw UsageError(run + " does not exist; give the --out folder of a finished sweep, or compare's X.json");
  return run;
}

}  // namespace

void add_report(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", subcommand_help("report"));
  static Params o;
  static std::string run;
  cmd->add_option("run", run, "A sweep's --out folder (its results.json) or compare's X.json")->required();
  add_options(*cmd, o);
  cmd->footer(
      "Writes DIR/report.html for a sweep folder, X.html beside compare's X.json (or --out PAGE.html): one page,\n"
      "data embedded, images linked relative to it; it opens from file:// without network.\n"
      "Examples:\n  autoguide report out/sweep\n  autoguide report out/cmp.json --out out/cmp-report.html");
  cmd->callback([] {
    const fs::path results = results_file(run);
    const fs::path page = o.out.empty() ? default_report_path(results) : fs::path(o.out);
    if (fs::exists(page) && fs::equivalent(page, results))
      throw UsageError("--out " + page.string() + " would replace the results it reports; give the page another name");
    if (!o.overwrite && fs::exists(page))
      throw UsageError(page.string() + " already exists; add --overwrite to replace it");
    ensure_writable_parent(page.string());
    write_report(results, page);
    if (!o.quiet) std::cerr << "autoguide: wrote " << page.string() << "\n";
    std::cout << page.string() << "\n";
  });
}

}  // namespace autoguide::cli
