// `autoguide sweep`: one or more guides at a range of guidance weights on the same seeds, as a labelled grid,
// a folder of PNGs per setting, results.csv/json and, with a detector, the FD of each setting and its plot.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "atomic_file.hpp"
#include "autoguide/error.hpp"
#include "autoguide/format.hpp"
#include "plot.hpp"
#include "report_page.hpp"
#include "image_output.hpp"
#include "autoguide/png.hpp"
#include "commands.hpp"
#include "csv.hpp"
#include "autoguide/preset.hpp"
#include "autoguide/version.hpp"
#include "fd_options.hpp"
#include "fd_report.hpp"
#include "image_output.hpp"
#include "nets.hpp"
#include "rows.hpp"
#include "option_values.hpp"
#include "sampling_options.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

namespace {

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

// One guide curve: a guide file, or a snapshot set at one post-hoc EMA length (--gnet-ema).
struct Guide {
  std::string path, name;  // name: the file's (guide_names) and the EMA length, as rows are labelled
  std::string stem;        // the folder names' start
  std::optional<EmaRequest> ema;
};

std::string ema_text(double std) {
  char s[32];
  std::snprintf(s, sizeof s, "%.3f", std);
  return s;
}

// One curve of the sweep: a main-net length (when --net is a snapshot set) and a guide, at every weight.
struct Curve {
  std::optional<EmaRequest> main_ema;
  const Guide* guide = nullptr;
  std::string name;    // the rows' label before " w=": "main ema=0.050 guide.pt ema=0.100", or the guide's
  std::string prefix;  // the folders' start for the main length: "main-ema0.050-", or empty
};

std::string folder_name(const Curve& c, double w) {
  return c.prefix + (w == 1 ? "unguided-w1.00" : c.guide->stem + "-w" + format_weight(w));
}

// Main lengths outermost, then guides (each set length's rows together, so that it is built once, just
// before them, and released after them).
std::vector<Curve> expand_curves(const std::vector<EmaRequest>& main_emas, const std::vector<Guide>& guides) {
  std::vector<std::optional<EmaRequest>> mains(main_emas.begin(), main_emas.end());
  if (mains.empty()) mains.push_back(std::nullopt);
  std::vector<Curve> curves;
  for (const auto& m : mains)
    for (const Guide& g : guides) {
      const std::string tag = m ? "main ema=" + ema_text(m->std) : "";
      curves.push_back({m, &g, m ? tag + " " + g.name : g.name, m ? "main-ema" + ema_text(m->std) + "-" : ""});
    }
  return curves;
}

// The main net, the guides and the VAE: given, or a preset's (looked up in the models folder).
struct SweepNets {
  std::string net, vae;
  std::vector<std::string> gnets;
  size_t ema_gnets = 0;  // the first gnets are the guides --gnet-ema applies to (the rest: --uncond's CFG curve)
  std::vector<EmaRequest> emas;  // --gnet-ema's lengths, or the preset's
  std::vector<EmaRequest> net_emas;  // --net-ema's lengths: none, or the main net is a set
};

// Each guide file, or each (set, EMA length) when --gnet-ema lists lengths: the sweep's curves, in order.
std::vector<Guide> expand_guides(const SweepNets& chosen) {
  const std::vector<EmaRequest>& emas = chosen.emas;
  const std::vector<std::string> names = guide_names(chosen.gnets);
  std::vector<Guide> guides;
  for (size_t g = 0; g < chosen.gnets.size(); ++g) {
    std::string stem = fs::path(names[g]).replace_extension().string();
    for (char& c : stem)
      if (c == '/' || c == '\\' || c == ' ') c = '_';
    if (g >= chosen.ema_gnets || emas.empty()) {
      guides.push_back({chosen.gnets[g], names[g], stem, std::nullopt});
      continue;
    }
    for (const EmaRequest& e : emas)
      guides.push_back({chosen.gnets[g], names[g] + " ema=" + ema_text(e.std), stem + "-ema" + ema_text(e.std), e});
  }
  return guides;
}

// One `autoguide sweep`: its options, request, nets, rows and ranks, from the options to the files written.
class SweepRun {
 public:
  SweepRun(const Params& o, const Ranks& ranks)
      : o(o), ranks(ranks), weights(parse_weights(o.guidance)), setup(resolve_sampling(o, fd_seeds(o), ranks.shard())),
        chosen(choose_nets()), guides(expand_guides(chosen)), curves(expand_curves(chosen.net_emas, guides)),
        nets(setup, chosen.vae) {}
  void run();

 private:
  SweepNets choose_nets() const;
  std::vector<Row> make_rows();
  std::set<std::string> plan_outputs() const;
  void clear_folders(const std::set<std::string>& folders) const;
  void write_fd_plot(const fs::path& file) const;
  void compare_with_best();
  std::string csv_table() const;
  void write_results(const nlohmann::json& rank_times) const;
  fs::path report_path() const;

  const Params& o;
  const Ranks& ranks;
  const std::vector<double> weights;
  const SamplingSetup setup;
  const SweepNets chosen;
  const std::vector<Guide> guides;
  const std::vector<Curve> curves;
  NetCache nets;
  std::vector<Row> rows;  // curve-major, one per weight
  std::optional<FdRun> fd;
  std::vector<nlohmann::json> vs_best;  // per space: each setting's paired difference to the best (null for it)
};

SweepNets SweepRun::choose_nets() const {
  SweepNets n{o.net, o.vae, {}, 0, ema_requests(o.gnet_ema, "--gnet-ema", o.ema_precision),
              ema_requests(o.net_ema, "--net-ema", o.ema_precision)};
  if (o.presets.size() > 1) throw UsageError("sweep takes one --preset; compare takes several (a row each)");
  if (!o.presets.empty()) {
    if (!o.net.empty() || !o.gnets.empty() || !o.uncond.empty())
      throw UsageError("--preset names the nets; drop --net/--gnet/--uncond, or drop --preset");
    const Preset p = find_preset(o.presets.front());
    if (p.gnet.empty())
      throw UsageError("preset " + p.name + " has no guiding net to sweep; use a guided preset (autoguide presets)");
    PresetLocator locate(setup.models);
    const PresetFiles f = locate.locate(p, true, !o.given("--vae"));
    locate.check();
    n.net = f.net, n.gnets = {f.gnet}, n.ema_gnets = 1;
    if (n.emas.empty() && p.gnet_ema) n.emas = {EmaRequest{*p.gnet_ema, std::nullopt, o.ema_precision == "fp32"}};
    if (!o.given("--vae")) n.vae = f.vae;
    return n;
  }
  if (o.net.empty()) throw UsageError("no main net: give --net MODEL.pt or --preset NAME");
  n.gnets = o.gnets;
  n.ema_gnets = o.gnets.size();
  if (!o.uncond.empty()) n.gnets.push_back(o.uncond);  // the CFG curve
  if (n.gnets.empty()) throw UsageError("no guide to sweep: give --gnet GUIDE.pt (or a,b.pt for several) or --uncond U.pt");
  for (const auto& g : n.gnets)
    if (g.empty()) throw UsageError("--gnet has an empty item; give files separated by commas");
  return n;
}

// One row per curve and weight, in that order. The nets are described now and built when their rows come:
// a set's length just before its first row, released after its last (so one length per set is alive at a
// time; a streamed set builds every length in its one pass, and each is freed after its rows).
std::vector<Row> SweepRun::make_rows() {
  std::vector<Row> rows;
  std::map<std::string, int> unguided;  // per main length: w = 1 never evaluates the guide, sampled once
  for (size_t c = 0; c < curves.size(); ++c) {
    const Curve& curve = curves[c];
    const Guide& g = *curve.guide;
    const Denoiser& main = nets.plan(chosen.net, curve.main_ema, "nets.main_ema");
    PixelDecoder& decoder = nets.decoder(main);
    const Denoiser& guide = nets.plan(g.path, g.ema, "nets.guide_ema");
    const bool last_of_main = c + 1 == curves.size() || curves[c + 1].main_ema.has_value() != curve.main_ema.has_value() ||
                              (curve.main_ema && curves[c + 1].main_ema->std != curve.main_ema->std);
    const bool guide_is_main = g.path == chosen.net && g.ema && curve.main_ema && g.ema->std == curve.main_ema->std &&
                               g.ema->kimg == curve.main_ema->kimg;
    // A guide length recurs under each main length. Resident, it is released after each curve and rebuilt (one
    // pass over memory); streamed, a rebuild would read the file again, so it is kept until its last curve.
    bool last_use = true;
    for (size_t later = c + 1; later < curves.size(); ++later) last_use &= curves[later].guide != curve.guide;
    const bool release_guide = !guide_is_main && (last_use || !nets.streamed(g.path));
    for (size_t k = 0; k < weights.size(); ++k) {
      const double w = weights[k];
      Row row;
      row.setting = {curve.name + " w=" + format_weight(w), {&main, &guide, nullptr}, w};
      row.decoder = &decoder;
      if (!o.presets.empty()) row.provenance["preset"] = o.presets.front();
      row.folder = folder_name(curve, w);
      int& shared = unguided.emplace(curve.prefix, -1).first->second;
      if (w == 1 && shared >= 0) row.same_as = shared;
      if (w == 1 && shared < 0) shared = static_cast<int>(rows.size());
      if (k == 0)
        row.before = [this, &curve] {
          nets.get(chosen.net, curve.main_ema, "nets.main_ema");
          nets.get(curve.guide->path, curve.guide->ema, "nets.guide_ema");
        };
      if (k + 1 == weights.size())
        row.after = [this, &curve, last_of_main, release_guide] {
          if (release_guide) nets.release(curve.guide->path, curve.guide->ema);
          if (last_of_main) nets.release(chosen.net, curve.main_ema);
        };
      rows.push_back(row);
    }
  }
  return rows;
}

// The sweep's files and folders, refused where they exist unless --overwrite (nothing a user already has is
// replaced unless asked). Returns the folders.
std::set<std::string> SweepRun::plan_outputs() const {
  const fs::path out(o.out);
  std::set<std::string> folders;
  for (const Curve& c : curves)
    for (double w : weights) folders.insert(folder_name(c, w));
  std::vector<fs::path> files = {out / "grid.png", out / "results.csv", out / "results.json", out / "fd.png",
                                 out / "features"};
  if (o.given("--report")) files.push_back(report_path());
  for (const auto& f : folders) files.push_back(out / f);
  for (const auto& f : files)
    if (!o.overwrite && fs::exists(f))
      throw UsageError(f.string() + " already exists; add --overwrite to replace the sweep's outputs");
  return folders;
}

// With --overwrite, old PNGs in a setting's folder go first, so that a folder holds this run's images only
// (fid reads whole folders). Rank 0 clears before any rank writes.
void SweepRun::clear_folders(const std::set<std::string>& folders) const {
  ensure_writable_dir(o.out);
  check_shared_folder(ranks, o.out);
  if (!o.overwrite) return;
  if (ranks.root()) fs::remove_all(fs::path(o.out) / "features");  // features an earlier run spilled
  for (const auto& f : folders)
    if (fs::is_directory(fs::path(o.out) / f) && ranks.root())
      for (const auto& e : fs::recursive_directory_iterator(fs::path(o.out) / f))
        if (e.is_regular_file() && e.path().extension() == ".png") fs::remove(e.path());
  ranks.barrier();
}

// FD against w, a curve per guide and feature space.
void SweepRun::write_fd_plot(const fs::path& file) const {
  const size_t samples = setup.base.seeds.size();
  std::vector<Series> lines;
  const std::vector<FdSpace>& spaces = fd->spaces;
  for (size_t g = 0; g < curves.size(); ++g)
    for (size_t f = 0; f < spaces.size(); ++f) {
      Series s{spaces.size() == 1 ? curves[g].name : curves[g].name + " " + fd_label(spaces, f), {}, {}, {}, {}};
      for (size_t k = 0; k < weights.size(); ++k) {
        const FdInterval& e = rows[g * weights.size() + k].fd[f].fd;
        s.x.push_back(weights[k]);
        s.y.push_back(e.value);
        s.lo.push_back(e.lo), s.hi.push_back(e.hi);
      }
      lines.push_back(s);
    }
  const std::string n = std::to_string(samples);
  const std::string bars =
      fd->settings.resamples > 0 ? ", " + std::to_string(std::lround(fd->settings.confidence * 100)) + "% bars" : "";
  write_png(file.string(), line_plot(lines, {"FD (" + n + " samples" + bars + ") against the guidance weight",
                                              "guidance weight w", "FD"}));
}

// In each space, every setting against the one of lowest FD, on their common seeds.
void SweepRun::compare_with_best() {
  for (size_t f = 0; f < fd->spaces.size(); ++f) {
    size_t best = 0;
    for (size_t k = 1; k < rows.size(); ++k)
      if (rows[k].fd[f].fd.value < rows[best].fd[f].fd.value) best = k;
    nlohmann::json per_row = nlohmann::json::array();
    for (size_t k = 0; k < rows.size(); ++k) {
      if (rows[k].feature_keys[f] == rows[best].feature_keys[f]) {
        per_row.push_back(nullptr);
        continue;
      }
      const FdDifference d = fd->difference(f, rows[k].feature_keys[f], rows[best].feature_keys[f]);
      per_row.push_back(difference_json(d, rows[k].setting.label, rows[best].setting.label));
    }
    vs_best.push_back(per_row);
    if (!o.quiet) std::cerr << "autoguide: " << fd_label(fd->spaces, f) << " best: " << rows[best].setting.label << "\n";
  }
}

// A line per setting: guide, w, mode, folder, then per space the FD, its interval, FD-inf and the difference to
// the best setting with its interval.
std::string SweepRun::csv_table() const {
  const std::vector<FdSpace>& spaces = fd->spaces;
  std::vector<std::string> header = {"guide", "w", "mode", "folder"};
  if (spaces.empty()) header.push_back("fd");
  for (size_t f = 0; f < spaces.size(); ++f) {
    const std::string p = fd_label(spaces, f);
    for (const auto& c : estimate_csv_header(p)) header.push_back(c);
    for (const auto& c : {"_vs_best", "_vs_best_lo", "_vs_best_hi"}) header.push_back(p + c);
  }
  std::vector<std::vector<std::string>> lines = {header};
  for (size_t k = 0; k < rows.size(); ++k) {
    const Row& r = rows[k];
    std::vector<std::string> line = {curves[k / weights.size()].name, format_number(r.setting.guidance),
                                     to_string(r.run.mode), r.folder};
    if (spaces.empty()) line.push_back("");
    for (size_t f = 0; f < spaces.size(); ++f) {
      for (const auto& c : estimate_csv(r.fd[f])) line.push_back(c);
      const nlohmann::json& d = vs_best[f][k];
      for (const char* key : {"value", "lo", "hi"})  // the best setting: 0, no interval
        line.push_back(d.is_null() ? (key[0] == 'v' ? "0" : "") : d[key].is_null() ? "" : format_number(d[key].get<double>()));
    }
    lines.push_back(line);
  }
  std::string csv;
  for (const auto& line : lines) csv += csv_line(line);
  return csv;
}

// grid.png, results.csv/json and, with FDs, fd.png.
void SweepRun::write_results(const nlohmann::json& rank_times) const {
  const GenerateRequest& base = setup.base;
  const fs::path out(o.out);
  const std::vector<FdSpace>& spaces = fd->spaces;
  const PixelDecoder& decoder = *rows.front().decoder;
  write_png((out / "grid.png").string(), rows_grid(rows, base));
  nlohmann::json settings_json = nlohmann::json::array();
  for (size_t k = 0; k < rows.size(); ++k) {
    const Row& r = rows[k];
    const Guide& g = *curves[k / weights.size()].guide;
    nlohmann::json j = {{"guide", g.name},  {"guide_file", g.path}, {"w", r.setting.guidance},
                        {"mode", to_string(r.run.mode)}, {"folder", r.folder},   {"label", r.setting.label},
                        {"images", base.seeds.size()},   {"seconds", r.seconds}};
    if (r.setting.nets.guide->posthoc_ema()) j["guide_ema"] = posthoc_ema_json(*r.setting.nets.guide);
    if (r.setting.nets.main->posthoc_ema()) j["net_ema"] = posthoc_ema_json(*r.setting.nets.main);
    j["parameters"] = sample_parameters(r.setting.request(base), r.setting.nets, r.run.mode, r.decoder);
    j["parameters"].update(r.provenance);
    if (spaces.size() == 1) j["fd"] = r.fd[0].fd.value;
    for (size_t f = 0; spaces.size() > 1 && f < spaces.size(); ++f) j["fds"][spaces[f].name] = r.fd[f].fd.value;
    for (size_t f = 0; f < spaces.size(); ++f) {
      nlohmann::json e = estimate_json(r.fd[f]);
      e["vs_best"] = vs_best[f][k];
      const std::string spilled = fd->features.file(r.feature_keys[f]);
      e["features"] = spilled.empty() ? nlohmann::json() : nlohmann::json(spilled);
      j["estimates"][spaces[f].name] = e;
    }
    settings_json.push_back(j);
  }
  const Denoiser& main = *rows.front().setting.nets.main;
  nlohmann::json results = {{"net", chosen.net},
                            {"seeds", fd_seeds(o)},
                            {"class_idx", base.class_idx >= 0 ? nlohmann::json(base.class_idx) : nlohmann::json()},
                            {"steps", base.sampler.schedule.num_steps},
                            {"sampler", to_string(base.sampler.kind)},
                            {"interval", base.interval.describe()},
                            {"dtype", to_string(rows.front().setting.nets.main->precision())},
                            {"fast", rows.front().setting.nets.main->fast()},
                            {"settings", settings_json},
                            {"grid_layout", grid_layout(rows, base, "grid.png")},
                            {"tool", "autoguide " AUTOGUIDE_VERSION},
                            {"commit", git_commit()}};
  if (main.posthoc_ema() && chosen.net_emas.size() == 1) results["net_ema"] = posthoc_ema_json(main);
  if (decoder.vae()) results["vae"] = decoder.vae()->path(), results["vae_dtype"] = to_string(decoder.vae()->precision());
  if (!o.presets.empty()) results["preset"] = o.presets.front();
  if (spaces.size() == 1) results["detector"] = o.detectors[0], results["ref"] = o.refs[0];
  for (size_t f = 0; f < spaces.size(); ++f)
    results["spaces"].push_back({{"name", spaces[f].name}, {"detector", o.detectors[f]}, {"ref", o.refs[f]}});
  if (!spaces.empty()) results["bootstrap"] = bootstrap_json(fd->settings);
  if (!rank_times.is_null()) results["ranks"] = rank_times;
  write_file_atomic((out / "results.csv").string(), csv_table());
  write_file_atomic((out / "results.json").string(), results.dump(2) + "\n");
  if (!spaces.empty()) write_fd_plot(out / "fd.png");
  if (o.given("--report")) write_report(out / "results.json", report_path());
}

// --report's page: OUT/report.html, or the file given.
fs::path SweepRun::report_path() const {
  return o.report.empty() ? fs::path(o.out) / "report.html" : fs::path(o.report);
}

void SweepRun::run() {
  ranks.use_device(setup.device);
  const std::set<std::string> folders = plan_outputs();
  std::optional<OutputLock> lock;  // one run at a time in a sweep folder (rank 0 claims for all ranks)
  if (ranks.root()) lock.emplace(OutputLock::claim_folder(o.out, "--out"));

  rows = make_rows();
  std::vector<Setting> settings;
  for (const auto& r : rows) settings.push_back(r.setting);
  validate(settings, setup.base);
  fd.emplace(open_fd(o, setup.device, rows.front().decoder->image_shape(), (fs::path(o.out) / "features").string()));
  check_same_files(ranks, nets.file_hashes());
  clear_folders(folders);
  if (ranks.root() && o.given("--report")) ensure_writable_parent(report_path().string());  // before hours of work

  run_rows(rows, setup.base, {o.out, o.grid_cols, o.quiet}, *fd, ranks);
  const nlohmann::json times = ranks.describe(ranks.gather_json(ranks.times()));
  if (!ranks.root()) return;
  estimate_rows(rows, *fd, o.quiet);
  compare_with_best();
  write_results(times);
  if (!o.quiet)
    std::cerr << "autoguide: swept " << rows.size() << " settings; wrote " << (fs::path(o.out) / "grid.png").string()
              << ", " << (fs::path(o.out) / "results.csv").string()
              << (fd->spaces.empty() ? "" : ", " + (fs::path(o.out) / "fd.png").string())
              << (o.given("--report") ? ", " + report_path().string() : "") << "\n";
}

}  // namespace

void add_sweep(CLI::App& app) {
  auto* cmd = app.add_subcommand("sweep", subcommand_help("sweep"));
  static Params o;
  o.seeds = "0-7";
  o.guidance = "1:3:0.25";
  add_options(*cmd, o);
  cmd->footer(
      "Examples:\n"
      "  autoguide sweep --net main.pt --gnet guide.pt,guide-long.pt --guidance 1:3:0.25 --out out/sweep\n"
      "  autoguide sweep --net main.pt --uncond uncond.pt --guidance 1,1.5,2 --detector det.pt --ref ref.npz "
      "--num 500 --out out/cfg\n"
      "  autoguide sweep --preset edm2-img64-s-autog-fid --guidance 1.5:2.5:0.1 --out out/s\n"
      "  autoguide sweep --net main.pt --gnet guide-set.pt --gnet-ema 0.05:0.20:0.025 --guidance 1.5,2,2.5 --out out/ema\n"
      "  autoguide sweep --net main-set.pt --net-ema 0.05,0.1 --gnet guide-set.pt --gnet-ema 0.05,0.1 --guidance 2 "
      "--out out/ema2");
  cmd->callback([cmd] { run_as_rank(*cmd, o.dist_timeout, [](const Ranks& ranks) {
    if (o.out.empty()) throw UsageError("no output folder: give --out DIR");
    SweepRun(o, ranks).run();
  }); });
}

}  // namespace autoguide::cli
