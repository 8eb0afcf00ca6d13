// `autoguide report RUN`: report.html from a finished sweep (its --out folder), compare (its X.json) or tune (its
// --out folder, finished or not), the same page that `--report` writes at the end of the run.
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

// RUN as a results file: a sweep folder's results.json or a tune folder's tune.json, or the JSON file given.
fs::path results_file(const std::string& run) {
  if (fs::is_directory(run)) {
    for (const char* name : {"results.json", "tune.json"})
      if (fs::is_regular_file(fs::path(run) / name)) return fs::path(run) / name;
    throw UsageError(run + " holds no results.json or tune.json; give the --out folder of a finished sweep or of "
                     "a tune, or compare's X.json");
  }
  if (!fs::is_regular_file(run))
    throw UsageError(run + " does not exist; give the --out folder of a finished sweep or of a tune, or compare's X.json");
  return run;
}

}  // namespace

void add_report(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", subcommand_help("report"));
  static Params o;
  static std::string run;
  cmd->add_option("run", run, "A sweep's or tune's --out folder (its results.json, tune.json) or compare's X.json")
      ->required();
  add_options(*cmd, o);
  cmd->footer(
      "Writes DIR/report.html for a sweep's or tune's folder, X.html beside compare's X.json (or --out PAGE.html):\n"
      "one page, data embedded, images linked relative to it; it opens from file:// without network.\n"
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
