// `autoguide sweep`: one or more guides at a range of guidance weights on the same seeds, as a labelled grid,
// a folder of PNGs per setting, results.csv/json and, with a detector, the FD of each setting and its plot.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>

#include "atomic_file.hpp"
#include "autoguide/error.hpp"
#include "plot.hpp"
#include "autoguide/png.hpp"
#include "commands.hpp"
#include "autoguide/preset.hpp"
#include "autoguide/version.hpp"
#include "fd_options.hpp"
#include "nets.hpp"
#include "rows.hpp"
#include "sampling_options.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

namespace {

struct SweepOptions {
  std::string preset, net, gnets, weights = "1:3:0.25", outdir;
  int grid_cols = 16;
  bool overwrite = false;
  SamplingOptions sampling;
  FdOptions fd;
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

// The main net, the guides and the VAE: given, or a preset's (looked up in the models folder).
struct SweepNets {
  std::string net, vae;
  std::vector<std::string> gnets;
};

SweepNets sweep_nets(const SweepOptions& o, const SamplingSetup& setup) {
  SweepNets n{o.net, o.sampling.vae, {}};
  if (!o.preset.empty()) {
    if (!o.net.empty() || !o.gnets.empty())
      throw UsageError("--preset names the nets; drop --net/--gnet, or drop --preset");
    const Preset p = find_preset(o.preset);
    if (p.gnet.empty())
      throw UsageError("preset " + p.name + " has no guiding net to sweep; use a guided preset (autoguide presets)");
    PresetLocator locate(setup.models);
    const PresetFiles f = locate.locate(p, true, !o.sampling.vae_given());
    locate.check();
    n.net = f.net, n.gnets = {f.gnet};
    if (!o.sampling.vae_given()) n.vae = f.vae;
    return n;
  }
  if (o.net.empty()) throw UsageError("no main net: give --net MODEL.pt or --preset NAME");
  if (o.gnets.empty()) throw UsageError("no guide to sweep: give --gnet GUIDE.pt (or a,b.pt for several)");
  n.gnets = split_list(o.gnets, "--gnet");
  return n;
}

// One row per guide and weight, in that order.
std::vector<Row> sweep_rows(const SweepOptions& o, NetCache& nets, const SweepNets& chosen,
                            const std::vector<double>& weights) {
  const std::vector<std::string> names = guide_names(chosen.gnets);
  const Denoiser& main = nets.get(chosen.net);
  PixelDecoder& decoder = nets.decoder(main);
  std::vector<Row> rows;
  int unguided = -1;  // w = 1 never evaluates the guide: sampled once, shared by every guide's curve
  for (size_t g = 0; g < chosen.gnets.size(); ++g) {
    const Denoiser& guide = nets.get(chosen.gnets[g]);
    for (double w : weights) {
      Row row;
      row.setting = {names[g] + " w=" + format_weight(w), {&main, &guide, nullptr}, w};
      row.decoder = &decoder;
      if (!o.preset.empty()) row.provenance["preset"] = o.preset;
      row.folder = w == 1 ? "unguided-w1.00" : folder_name(names[g], w);
      if (w == 1 && unguided >= 0) row.same_as = unguided;
      if (w == 1 && unguided < 0) unguided = static_cast<int>(rows.size());
      rows.push_back(row);
    }
  }
  return rows;
}

// The sweep's files and folders, refused where they exist unless --overwrite (nothing a user already has is
// replaced unless asked). Returns the folders.
std::set<std::string> plan_outputs(const SweepOptions& o, const SweepNets& chosen, const std::vector<double>& weights) {
  const fs::path out(o.outdir);
  std::set<std::string> folders;
  for (const auto& name : guide_names(chosen.gnets))
    for (double w : weights) folders.insert(w == 1 ? "unguided-w1.00" : folder_name(name, w));
  std::vector<fs::path> files = {out / "grid.png", out / "results.csv", out / "results.json", out / "fd.png"};
  for (const auto& f : folders) files.push_back(out / f);
  for (const auto& f : files)
    if (!o.overwrite && fs::exists(f))
      throw UsageError(f.string() + " already exists; add --overwrite to replace the sweep's outputs");
  return folders;
}

// With --overwrite, old PNGs in a setting's folder go first, so that a folder holds this run's images only
// (fid reads whole folders). Rank 0 clears before any rank writes.
void clear_folders(const SweepOptions& o, const std::set<std::string>& folders, const Ranks& ranks) {
  ensure_writable_dir(o.outdir);
  check_shared_folder(ranks, o.outdir);
  if (!o.overwrite) return;
  for (const auto& f : folders)
    if (fs::is_directory(fs::path(o.outdir) / f) && ranks.root())
      for (const auto& e : fs::recursive_directory_iterator(fs::path(o.outdir) / f))
        if (e.is_regular_file() && e.path().extension() == ".png") fs::remove(e.path());
  ranks.barrier();
}

// FD against w, a curve per guide and feature space.
void write_fd_plot(const fs::path& file, const std::vector<Row>& rows, const std::vector<std::string>& names,
                   const std::vector<double>& weights, const std::vector<FdSpace>& spaces, size_t samples) {
  std::vector<Series> curves;
  for (size_t g = 0; g < names.size(); ++g)
    for (size_t f = 0; f < spaces.size(); ++f) {
      Series s{spaces.size() == 1 ? names[g] : names[g] + " " + fd_label(spaces, f), {}, {}};
      for (size_t k = 0; k < weights.size(); ++k) {
        s.x.push_back(weights[k]);
        s.y.push_back(rows[g * weights.size() + k].fd[f]);
      }
      curves.push_back(s);
    }
  const std::string n = std::to_string(samples);
  write_png(file.string(), line_plot(curves, {"FD (" + n + " samples) against the guidance weight", "guidance weight w", "FD"}));
}

// grid.png, results.csv/json and, with FDs, fd.png.
void write_results(const SweepOptions& o, const SweepNets& chosen, const std::vector<Row>& rows,
                   const std::vector<double>& weights, const GenerateRequest& base, const std::vector<FdSpace>& spaces,
                   const nlohmann::json& ranks) {
  const fs::path out(o.outdir);
  const std::vector<std::string>& gnets = chosen.gnets;
  const std::vector<std::string> names = guide_names(gnets);
  const PixelDecoder& decoder = *rows.front().decoder;
  write_png((out / "grid.png").string(), rows_grid(rows, base));
  nlohmann::json settings_json = nlohmann::json::array();
  std::string csv = "guide,w,mode,folder";
  for (size_t f = 0; f < std::max<size_t>(spaces.size(), 1); ++f) csv += "," + csv_field(spaces.empty() ? "fd" : fd_label(spaces, f));
  csv += "\n";
  for (size_t k = 0; k < rows.size(); ++k) {
    const Row& r = rows[k];
    const size_t g = k / weights.size();
    nlohmann::json j = {{"guide", names[g]},        {"guide_file", gnets[g]}, {"w", r.setting.guidance},
                        {"mode", to_string(r.run.mode)}, {"folder", r.folder},   {"label", r.setting.label},
                        {"images", base.seeds.size()},   {"seconds", r.run.seconds}};
    if (spaces.size() == 1) j["fd"] = r.fd[0];
    for (size_t f = 0; spaces.size() > 1 && f < spaces.size(); ++f) j["fds"][spaces[f].name] = r.fd[f];
    settings_json.push_back(j);
    csv += csv_field(names[g]) + "," + number(r.setting.guidance) + "," + to_string(r.run.mode) + "," + csv_field(r.folder);
    for (size_t f = 0; f < std::max<size_t>(spaces.size(), 1); ++f) csv += "," + (spaces.empty() ? "" : number(r.fd[f]));
    csv += "\n";
  }
  nlohmann::json results = {{"net", chosen.net},
                            {"seeds", fd_seeds(o.fd, o.sampling)},
                            {"class_idx", base.class_idx >= 0 ? nlohmann::json(base.class_idx) : nlohmann::json()},
                            {"steps", base.sampler.schedule.num_steps},
                            {"sampler", to_string(base.sampler.kind)},
                            {"interval", base.interval.describe()},
                            {"dtype", to_string(rows.front().setting.nets.main->precision())},
                            {"fast", rows.front().setting.nets.main->fast()},
                            {"settings", settings_json},
                            {"tool", "autoguide " AUTOGUIDE_VERSION},
                            {"commit", git_commit()}};
  if (decoder.vae()) results["vae"] = decoder.vae()->path(), results["vae_dtype"] = to_string(decoder.vae()->precision());
  if (!o.preset.empty()) results["preset"] = o.preset;
  if (spaces.size() == 1) results["detector"] = o.fd.detectors[0], results["ref"] = o.fd.refs[0];
  for (size_t f = 0; spaces.size() > 1 && f < spaces.size(); ++f)
    results["spaces"].push_back({{"name", spaces[f].name}, {"detector", o.fd.detectors[f]}, {"ref", o.fd.refs[f]}});
  if (!ranks.is_null()) results["ranks"] = ranks;
  write_file_atomic((out / "results.csv").string(), csv);
  write_file_atomic((out / "results.json").string(), results.dump(2) + "\n");
  if (!spaces.empty()) write_fd_plot(out / "fd.png", rows, names, weights, spaces, base.seeds.size());
}

void run_sweep(SweepOptions& o, const Ranks& ranks) {
  if (o.outdir.empty()) throw UsageError("no output folder: give --outdir DIR");
  const std::vector<double> weights = parse_weights(o.weights, "--guidance");
  const SamplingSetup setup = resolve_sampling(o.sampling, fd_seeds(o.fd, o.sampling), ranks.shard());
  ranks.use_device(setup.device);
  const SweepNets chosen = sweep_nets(o, setup);
  const std::set<std::string> folders = plan_outputs(o, chosen, weights);
  std::optional<OutputLock> lock;  // one run at a time in a sweep folder (rank 0 claims for all ranks)
  if (ranks.root()) lock.emplace(OutputLock::claim_folder(o.outdir, "--outdir"));

  NetCache nets(setup, chosen.vae);
  std::vector<Row> rows = sweep_rows(o, nets, chosen, weights);
  std::vector<Setting> settings;
  for (const auto& r : rows) settings.push_back(r.setting);
  validate(settings, setup.base);
  std::vector<FdSpace> spaces = open_fd(o.fd, setup.device, rows.front().decoder->image_shape());
  check_same_files(ranks, nets.file_hashes());
  clear_folders(o, folders, ranks);

  run_rows(rows, setup.base, {o.outdir, o.grid_cols, o.sampling.quiet}, spaces, ranks);
  const nlohmann::json times = ranks.describe(ranks.gather_json(ranks.times()));
  if (!ranks.root()) return;
  write_results(o, chosen, rows, weights, setup.base, spaces, times);
  if (!o.sampling.quiet)
    std::cerr << "autoguide: swept " << rows.size() << " settings; wrote " << (fs::path(o.outdir) / "grid.png").string()
              << ", " << (fs::path(o.outdir) / "results.csv").string()
              << (spaces.empty() ? "" : ", " + (fs::path(o.outdir) / "fd.png").string()) << "\n";
}

}  // namespace

void add_sweep(CLI::App& app) {
  auto* cmd = app.add_subcommand("sweep", "Sample guides at several guidance weights on the same seeds: grid, folders, FD");
  static SweepOptions o;
  cmd->add_option("--preset", o.preset, "Sweep a guided preset's main net and guide (and its VAE)");
  cmd->add_option("--net", o.net, "Main network (.pt from scripts/export_edm2.py)");
  cmd->add_option("--gnet", o.gnets, "Guiding network(s), comma-separated; each is swept");
  cmd->add_option("--guidance", o.weights, "Weights: a list (1,1.5,2.1) or START:STOP:STEP (1:3:0.25)")
      ->capture_default_str();
  cmd->add_option("--outdir", o.outdir, "Output folder: grid.png, results.csv/json, fd.png, one folder per setting");
  cmd->add_flag("--overwrite", o.overwrite, "Replace the outputs of an earlier sweep in --outdir");
  add_grid_cols_option(*cmd, o.grid_cols);
  o.sampling.seeds = "0-7";
  add_sampling_options(*cmd, o.sampling, "Seeds, the same for every setting (or 0..N-1 with --num N)");
  add_fd_options(*cmd, o.fd);
  cmd->callback([cmd] { run_as_rank(*cmd, o.sampling.dist_timeout, [](const Ranks& ranks) { run_sweep(o, ranks); }); });
}

}  // namespace autoguide::cli
