// `autoguide sweep`: one or more guides at a range of guidance weights on the same seeds, as a labelled grid,
// a folder of PNGs per setting, results.csv/json and, with a detector, the FD of each setting and its plot.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>

#include "autoguide/atomic_file.hpp"
#include "autoguide/error.hpp"
#include "autoguide/plot.hpp"
#include "autoguide/png.hpp"
#include "commands.hpp"
#include "device.hpp"
#include "settings.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

namespace {

struct SweepOptions {
  std::string net, gnets, weights = "1:3:0.25", outdir;
  bool overwrite = false;
  SamplingOptions sampling;
};

std::vector<std::string> split_list(const std::string& text, const std::string& option) {
  std::vector<std::string> items;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.empty()) throw UsageError(option + " '" + text + "' has an empty item");
    items.push_back(item);
  }
  if (items.empty() || text.back() == ',') throw UsageError(option + " '" + text + "' has an empty item");
  return items;
}

// Guides are named by file name, or by the path as given where two share a file name.
std::vector<std::string> guide_names(const std::vector<std::string>& paths) {
  std::set<std::string> seen_paths, seen_names;
  bool clash = false;
  for (const auto& p : paths) {
    if (!seen_paths.insert(p).second) throw UsageError("--gnet lists " + p + " twice");
    clash |= !seen_names.insert(fs::path(p).filename().string()).second;
  }
  std::vector<std::string> names;
  for (const auto& p : paths) names.push_back(clash ? p : fs::path(p).filename().string());
  return names;
}

std::string folder_name(const std::string& guide_name, double w) {
  std::string stem = fs::path(guide_name).replace_extension().string();
  for (char& c : stem)
    if (c == '/' || c == '\\' || c == ' ') c = '_';
  return stem + "-w" + format_weight(w);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// The shortest spelling that reads back as the same double (2.1, not 2.1000000000000001).
std::string number(double v) {
  char s[64];
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(s, sizeof s, "%.*g", digits, v);
    if (std::strtod(s, nullptr) == v) break;
  }
  return s;
}

void run_sweep(SweepOptions& o) {
  if (o.net.empty()) throw UsageError("no main net: give --net MODEL.pt");
  if (o.gnets.empty()) throw UsageError("no guide to sweep: give --gnet GUIDE.pt (or a,b.pt for several)");
  if (o.outdir.empty()) throw UsageError("no output folder: give --outdir DIR");
  const std::vector<double> weights = parse_weights(o.weights, "--guidance");
  const std::vector<std::string> gnets = split_list(o.gnets, "--gnet");
  const std::vector<std::string> names = guide_names(gnets);
  const GenerateRequest base = base_request(o.sampling);

  const torch::Device device = select_device(o.sampling.device, o.sampling.threads);
  NetCache nets(device, parse_precision(o.sampling.dtype, device));
  const Denoiser& main = nets.get(o.net);
  check_pixels(main);
  std::vector<Row> rows;
  int unguided = -1;  // w = 1 never evaluates the guide: sampled once, shared by every guide's curve
  for (size_t g = 0; g < gnets.size(); ++g) {
    const Denoiser& guide = nets.get(gnets[g]);
    for (double w : weights) {
      Row row;
      row.setting = {names[g] + " w=" + format_weight(w), {&main, &guide, nullptr}, w};
      row.folder = w == 1 ? "unguided-w1.00" : folder_name(names[g], w);
      if (w == 1 && unguided >= 0) row.same_as = unguided;
      if (w == 1 && unguided < 0) unguided = static_cast<int>(rows.size());
      rows.push_back(row);
    }
  }
  std::vector<Setting> settings;
  for (const auto& r : rows) settings.push_back(r.setting);
  validate(settings, base);
  std::optional<FdSetup> fd = open_fd(o.sampling, device, main.info());

  // Nothing a user already has is replaced unless asked; with --overwrite, old PNGs in a setting's folder go
  // first, so that a folder holds this run's images only (fid reads whole folders).
  const fs::path out(o.outdir);
  std::vector<fs::path> files = {out / "grid.png", out / "results.csv", out / "results.json", out / "fd.png"};
  std::set<std::string> folders;
  for (const auto& r : rows) folders.insert(r.folder);
  for (const auto& f : folders) files.push_back(out / f);
  for (const auto& f : files)
    if (!o.overwrite && fs::exists(f))
      throw UsageError(f.string() + " already exists; add --overwrite to replace the sweep's outputs");
  ensure_writable_dir(o.outdir);
  if (o.overwrite)
    for (const auto& f : folders)
      if (fs::is_directory(out / f))
        for (const auto& e : fs::recursive_directory_iterator(out / f))
          if (e.is_regular_file() && e.path().extension() == ".png") fs::remove(e.path());

  run_rows(rows, base, o.sampling, o.outdir, fd ? &*fd : nullptr);

  write_png((out / "grid.png").string(), rows_grid(rows, base));
  nlohmann::json settings_json = nlohmann::json::array();
  std::string csv = "guide,w,mode,folder,fd\n";
  for (size_t k = 0; k < rows.size(); ++k) {
    const Row& r = rows[k];
    const size_t g = k / weights.size();
    nlohmann::json j = {{"guide", names[g]},        {"guide_file", gnets[g]}, {"w", r.setting.guidance},
                        {"mode", to_string(r.run.mode)}, {"folder", r.folder},   {"label", r.setting.label},
                        {"images", base.seeds.size()},   {"seconds", r.run.seconds}};
    if (r.fd) j["fd"] = *r.fd;
    settings_json.push_back(j);
    csv += csv_field(names[g]) + "," + number(r.setting.guidance) + "," + to_string(r.run.mode) + "," +
           csv_field(r.folder) + "," + (r.fd ? number(*r.fd) : "") + "\n";
  }
  nlohmann::json results = {{"net", o.net},
                            {"seeds", seeds_text(o.sampling)},
                            {"class_idx", base.class_idx >= 0 ? nlohmann::json(base.class_idx) : nlohmann::json()},
                            {"steps", base.sampler.schedule.num_steps},
                            {"sampler", to_string(base.sampler.kind)},
                            {"interval", base.interval.describe()},
                            {"dtype", o.sampling.dtype},
                            {"settings", settings_json},
                            {"tool", "autoguide " AUTOGUIDE_VERSION}};
  if (fd) results["detector"] = o.sampling.detector, results["ref"] = o.sampling.ref;
  write_file_atomic((out / "results.csv").string(), csv);
  write_file_atomic((out / "results.json").string(), results.dump(2) + "\n");
  if (fd) {
    std::vector<Series> curves;
    for (size_t g = 0; g < gnets.size(); ++g) {
      Series s{names[g], {}, {}};
      for (size_t k = 0; k < weights.size(); ++k) {
        s.x.push_back(weights[k]);
        s.y.push_back(*rows[g * weights.size() + k].fd);
      }
      curves.push_back(s);
    }
    const std::string n = std::to_string(base.seeds.size());
    write_png((out / "fd.png").string(),
              line_plot(curves, {"FD (" + n + " samples) against the guidance weight", "guidance weight w", "FD"}));
  }
  if (!o.sampling.quiet)
    std::cerr << "autoguide: swept " << rows.size() << " settings; wrote " << (out / "grid.png").string() << ", "
              << (out / "results.csv").string() << (fd ? ", " + (out / "fd.png").string() : "") << "\n";
}

}  // namespace

void add_sweep(CLI::App& app) {
  auto* cmd = app.add_subcommand("sweep", "Sample guides at several guidance weights on the same seeds: grid, folders, FD");
  static SweepOptions o;
  cmd->add_option("--net", o.net, "Main network (.pt from scripts/export_edm2.py)");
  cmd->add_option("--gnet", o.gnets, "Guiding network(s), comma-separated; each is swept");
  cmd->add_option("--guidance", o.weights, "Weights: a list (1,1.5,2.1) or START:STOP:STEP (1:3:0.25)")
      ->capture_default_str();
  cmd->add_option("--outdir", o.outdir, "Output folder: grid.png, results.csv/json, fd.png, one folder per setting");
  cmd->add_flag("--overwrite", o.overwrite, "Replace the outputs of an earlier sweep in --outdir");
  add_sampling_options(*cmd, o.sampling);
  cmd->callback([] { run_sweep(o); });
}

}  // namespace autoguide::cli
