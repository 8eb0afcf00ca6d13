// `autoguide compare`: no guidance, CFG, autoguidance (and their mix) side by side on the same seeds, as one
// labelled grid; with a detector, the FD of each row on stdout. Rows come from nets and weights given one by
// one, or from presets (one row each).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "atomic_file.hpp"
#include "autoguide/error.hpp"
#include "autoguide/format.hpp"
#include "autoguide/png.hpp"
#include "autoguide/preset.hpp"
#include "autoguide/version.hpp"
#include "commands.hpp"
#include "csv.hpp"
#include "fd_report.hpp"
#include "fd_options.hpp"
#include "nets.hpp"
#include "rows.hpp"
#include "report_page.hpp"
#include "image_output.hpp"
#include "option_values.hpp"
#include "sampling_options.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

namespace {

// The weights of the rows: --ag / --cfg, else --guidance (one weight) for both; NaN where neither is given.
struct RowWeights {
  double ag = std::nan(""), cfg = std::nan(""), mix = std::nan("");
};

RowWeights row_weights(const Params& o) {
  RowWeights w{o.ag, o.cfg, o.mix};
  if (!o.given("--guidance")) return w;
  const std::vector<double> given = parse_weights(o.guidance);
  if (given.size() != 1) throw UsageError("compare takes one --guidance weight (or --ag and --cfg); sweep takes lists");
  if (std::isnan(w.ag)) w.ag = given.front();
  if (std::isnan(w.cfg)) w.cfg = given.front();
  return w;
}

std::string label(GuidanceMode mode, double w, double alpha = std::nan("")) {
  std::string l = to_string(mode) + " w=" + format_weight(w);
  if (!std::isnan(alpha)) l += " a=" + format_weight(alpha);
  return l;
}

struct PresetRow {
  Preset preset;
  PresetFiles files;
};

// One `autoguide compare`: its options, weights, request, presets, nets and ranks, from the options to the grid.
class CompareRun {
 public:
  CompareRun(const Params& o, const Ranks& ranks) : o(o), ranks(ranks), w(row_weights(o)) {
    if (o.presets.empty()) check_explicit();
  }
  void run();

 private:
  void check_explicit() const;
  std::vector<Row> explicit_rows(NetCache& nets, const GenerateRequest& base) const;
  std::vector<PresetRow> locate_presets(const SamplingSetup& setup, std::string& vae) const;

  const Params& o;
  const Ranks& ranks;
  const RowWeights w;
};

void CompareRun::check_explicit() const {
  if (o.net.empty()) throw UsageError("no main net: give --net MODEL.pt or --preset NAME (repeatable)");
  if (o.gnets.empty() && o.uncond.empty())
    throw UsageError("nothing to compare: give --gnet G.pt --ag W (autoguidance) and/or --uncond U.pt --cfg W (CFG)");
  if (!o.gnets.empty() && std::isnan(w.ag)) throw UsageError("--gnet needs its weight: add --ag W (e.g. 2.1)");
  if (!o.uncond.empty() && std::isnan(w.cfg)) throw UsageError("--uncond needs its weight: add --cfg W (e.g. 1.4)");
  if (o.gnets.empty() && o.given("--ag")) throw UsageError("--ag weighs the autoguidance guide: add --gnet G.pt");
  if (o.uncond.empty() && o.given("--cfg")) throw UsageError("--cfg weighs the unconditional net: add --uncond U.pt");
  if (!std::isnan(o.alpha) && (o.gnets.empty() || o.uncond.empty()))
    throw UsageError("--alpha mixes CFG with autoguidance and needs both --gnet and --uncond");
  if (!std::isnan(w.mix) && std::isnan(o.alpha)) throw UsageError("--mix is the weight of the mixed row: add --alpha A");
}

// None, then CFG, autoguidance (a row per guide) and the mix (with the first guide) where their nets are given.
std::vector<Row> CompareRun::explicit_rows(NetCache& nets, const GenerateRequest& base) const {
  const Denoiser& main = nets.get(o.net, one_ema(o.net_ema, "--net-ema", o.ema_precision), "nets.main_ema");
  const std::optional<EmaRequest> guide_ema = one_ema(o.gnet_ema, "--gnet-ema", o.ema_precision);
  const Denoiser* uncond = o.uncond.empty() ? nullptr : &nets.get(o.uncond);
  std::vector<Row> rows;
  auto add = [&](Nets n, double w, double alpha, GuidanceMode expected, const std::string& role) {
    Row row;
    row.setting = {"", n, w, alpha};
    row.decoder = &nets.decoder(main);
    const GenerateRequest req = row.setting.request(base);
    validate(req, n);
    // The row's label promises a mode; a net passed in the wrong role would silently give the other one.
    if (w != 1 && run_mode(req, n) != expected) throw UsageError(role);
    row.setting.label = label(w == 1 ? GuidanceMode::None : expected, w, alpha);
    rows.push_back(row);
  };
  add({&main}, 1, std::nan(""), GuidanceMode::None, "");
  if (uncond)
    add({&main, uncond}, w.cfg, std::nan(""), GuidanceMode::CFG,
        "--uncond must be an unconditional net guiding a conditional main net (CFG)");
  for (const auto& g : o.gnets)
    add({&main, &nets.get(g, guide_ema, "nets.guide_ema")}, w.ag, std::nan(""), GuidanceMode::Autoguidance,
        "--gnet must be conditioned like the main net (autoguidance); pass an unconditional guide as --uncond");
  if (!std::isnan(o.alpha))
    add({&main, &nets.get(o.gnets.front(), guide_ema, "nets.guide_ema"), uncond}, std::isnan(w.mix) ? w.ag : w.mix, o.alpha, GuidanceMode::Mixed, "");
  return rows;
}


// The presets and their files (every missing file of every preset listed at once); the VAE they share.
std::vector<PresetRow> CompareRun::locate_presets(const SamplingSetup& setup, std::string& vae) const {
  for (const char* flag : {"--net", "--gnet", "--uncond", "--guidance", "--ag", "--cfg", "--alpha", "--mix", "--net-ema",
                           "--gnet-ema"})
    if (o.given(flag))
      throw UsageError("--preset rows bring their own nets and weights; drop --net/--gnet/--uncond/--guidance/--ag/"
                       "--cfg/--alpha/--mix/--net-ema/--gnet-ema, or drop --preset");
  PresetLocator locator(setup.models);
  std::vector<PresetRow> rows;
  for (const auto& name : o.presets) {
    Preset p = find_preset(name);
    rows.push_back({p, locator.locate(p, p.guidance != 1, !o.given("--vae"))});
  }
  locator.check();
  vae = o.vae;
  for (const auto& r : rows) {
    if (o.given("--vae") || r.files.vae.empty()) continue;
    if (!vae.empty() && vae != r.files.vae)
      throw UsageError("presets " + rows.front().preset.name + " and " + r.preset.name +
                       " name different VAEs; give one with --vae");
    vae = r.files.vae;
  }
  return rows;
}

// One row per preset: its nets and weight, labelled with the preset, the mode, w and the main net.
// A preset's guide may be a snapshot set at its post-hoc EMA length (gnet_ema), built as --gnet-ema builds it.
std::vector<Row> preset_rows(const std::vector<PresetRow>& presets, NetCache& nets, const GenerateRequest& base,
                             bool ema_fp32) {
  std::vector<Row> rows;
  for (const auto& pr : presets) {
    const Denoiser& main = nets.get(pr.files.net);
    std::optional<EmaRequest> ema;
    if (pr.preset.gnet_ema) ema = EmaRequest{*pr.preset.gnet_ema, std::nullopt, ema_fp32};
    const Denoiser* guide = pr.files.gnet.empty() ? nullptr : &nets.get(pr.files.gnet, ema, "nets.guide_ema");
    Row row;
    row.setting = {"", {&main, guide, nullptr}, pr.preset.guidance};
    row.decoder = &nets.decoder(main);
    row.provenance["preset"] = pr.preset.name;
    const GenerateRequest req = row.setting.request(base);
    validate(req, row.setting.nets);
    row.setting.label = pr.preset.name + ": " + label(run_mode(req, row.setting.nets), pr.preset.guidance) +
                        ", net " + fs::path(pr.files.net).stem().string();
    if (ema) row.setting.label += ", guide ema " + format_number(ema->std);
    rows.push_back(row);
  }
  return rows;
}

// The files written beside the grid: OUT.json, OUT.csv (OUT without its extension) and, for features beyond
// --features-memory, the folder OUT.features.
fs::path beside(const std::string& out, const std::string& ext) { return fs::path(out).replace_extension(ext); }

// --report's page: OUT's name + .html beside the grid, or the file given.
fs::path report_path(const Params& o) { return o.report.empty() ? beside(o.out, ".html") : fs::path(o.report); }

// The pairs compare reports in each space: every guided row against the first unguided one, and every
// autoguidance row against every CFG row.
std::vector<std::pair<size_t, size_t>> reported_pairs(const std::vector<Row>& rows) {
  std::vector<std::pair<size_t, size_t>> pairs;
  const auto none = std::find_if(rows.begin(), rows.end(), [](const Row& r) { return r.run.mode == GuidanceMode::None; });
  for (size_t a = 0; a < rows.size(); ++a)
    if (none != rows.end() && rows[a].run.mode != GuidanceMode::None)
      pairs.emplace_back(a, static_cast<size_t>(none - rows.begin()));
  for (size_t a = 0; a < rows.size(); ++a)
    for (size_t b = 0; b < rows.size(); ++b)
      if (rows[a].run.mode == GuidanceMode::Autoguidance && rows[b].run.mode == GuidanceMode::CFG)
        pairs.emplace_back(a, b);
  return pairs;
}

struct Paired {
  size_t a, b;  // rows
  FdDifference d;
};

// The paired differences of reported_pairs, per space.
std::vector<std::vector<Paired>> paired_differences(const std::vector<Row>& rows, const FdRun& fd) {
  std::vector<std::vector<Paired>> all(fd.spaces.size());
  for (size_t k = 0; k < fd.spaces.size(); ++k)
    for (const auto& [a, b] : reported_pairs(rows))
      all[k].push_back({a, b, fd.difference(k, rows[a].feature_keys[k], rows[b].feature_keys[k])});
  return all;
}

// The rows' names in verdict lines: "mode w=W" where that names one row (preset labels are long), else the label.
std::vector<std::string> verdict_names(const std::vector<Row>& rows) {
  std::vector<std::string> names;
  for (const auto& r : rows) names.push_back(label(r.run.mode, r.setting.guidance, r.setting.alpha));
  for (size_t i = 0; i < rows.size(); ++i)
    if (std::count(names.begin(), names.end(), names[i]) > 1) {
      names.clear();
      for (const auto& r : rows) names.push_back(r.setting.label);
      break;
    }
  return names;
}

// A line per row (its label, then the FD in each space with its interval, and FD-inf where estimated), then a
// verdict line per space from the paired differences.
void print_fds(const std::vector<Row>& rows, const FdRun& fd, const std::vector<std::vector<Paired>>& diffs) {
  const std::vector<std::string> names = verdict_names(rows);
  for (const auto& r : rows) {
    std::cout << r.setting.label;
    for (size_t k = 0; k < r.fd.size(); ++k) std::cout << "\t" << estimate_cells(fd_label(fd.spaces, k), r.fd[k]);
    std::cout << "\n";
  }
  for (size_t k = 0; k < diffs.size(); ++k) {
    std::string line;
    for (const auto& p : diffs[k])
      line += (line.empty() ? "" : "; ") + verdict_text(p.d, names[p.a], names[p.b]);
    if (!line.empty()) std::cout << fd_label(fd.spaces, k) << ": " << line << "\n";
  }
}

// OUT.json: the rows with their parameters and estimates, the paired differences, and how they were made.
nlohmann::json results_json(const std::vector<Row>& rows, const FdRun& fd, const std::vector<std::vector<Paired>>& diffs,
                            const Params& o, const GenerateRequest& base) {
  nlohmann::json rows_json = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json j = {{"label", r.setting.label}, {"mode", to_string(r.run.mode)}, {"w", r.setting.guidance},
                        {"images", base.seeds.size()}, {"seconds", r.seconds}};
    if (!std::isnan(r.setting.alpha)) j["alpha"] = r.setting.alpha;
    j.update(r.provenance);
    j["parameters"] = sample_parameters(r.setting.request(base), r.setting.nets, r.run.mode, r.decoder);
    j["parameters"].update(r.provenance);
    for (size_t k = 0; k < r.fd.size(); ++k) j["estimates"][fd.spaces[k].name] = estimate_json(r.fd[k]);
    rows_json.push_back(j);
  }
  nlohmann::json j = {{"grid", o.out},
                      {"seeds", fd_seeds(o)},
                      {"steps", base.sampler.schedule.num_steps},
                      {"sampler", to_string(base.sampler.kind)},
                      {"rows", rows_json},
                      {"grid_layout", grid_layout(rows, base, fs::path(o.out).filename().string())},
                      {"tool", "autoguide " AUTOGUIDE_VERSION},
                      {"commit", git_commit()}};
  for (size_t k = 0; k < fd.spaces.size(); ++k) {
    j["spaces"].push_back({{"name", fd.spaces[k].name}, {"detector", o.detectors[k]}, {"ref", o.refs[k]}});
    for (const auto& p : diffs[k])
      j["differences"][fd.spaces[k].name].push_back(
          difference_json(p.d, rows[p.a].setting.label, rows[p.b].setting.label));
  }
  if (!fd.spaces.empty()) j["bootstrap"] = bootstrap_json(fd.settings);
  return j;
}

// OUT.csv: a line per row, its label, mode, w and per space the FD, its interval and FD-inf.
std::string results_csv(const std::vector<Row>& rows, const FdRun& fd) {
  std::vector<std::string> header = {"label", "mode", "w"};
  for (size_t k = 0; k < fd.spaces.size(); ++k)
    for (const auto& c : estimate_csv_header(fd_label(fd.spaces, k))) header.push_back(c);
  std::string csv = csv_line(header);
  for (const auto& r : rows) {
    std::vector<std::string> line = {r.setting.label, to_string(r.run.mode), format_number(r.setting.guidance)};
    for (const auto& e : r.fd)
      for (const auto& c : estimate_csv(e)) line.push_back(c);
    csv += csv_line(line);
  }
  return csv;
}

void CompareRun::run() {
  const SamplingSetup setup = resolve_sampling(o, fd_seeds(o), ranks.shard());
  ranks.use_device(setup.device);
  std::string vae = o.vae;
  const std::vector<PresetRow> presets = o.presets.empty() ? std::vector<PresetRow>{} : locate_presets(setup, vae);
  std::vector<fs::path> outputs = {fs::path(o.out), beside(o.out, ".json"), beside(o.out, ".csv"), beside(o.out, ".features")};
  if (o.given("--report")) {
    for (const auto& f : outputs)
      if (fs::path(report_path(o)).lexically_normal() == f.lexically_normal())
        throw UsageError("--report " + report_path(o).string() + " would replace compare's own " + f.filename().string() +
                         "; give the page another name (e.g. --report=" + beside(o.out, ".html").string() + ")");
    outputs.push_back(report_path(o));
  }
  for (const auto& f : outputs)
    if (!o.overwrite && file_exists(f.string()))
      throw UsageError(f.string() + " already exists; add --overwrite to replace compare's outputs");
  std::optional<OutputLock> lock;  // one run at a time writes --out (rank 0 claims for all ranks)
  if (ranks.root()) lock.emplace(OutputLock::claim_file(o.out, "--out"));

  NetCache nets(setup, vae);
  std::vector<Row> rows = presets.empty() ? explicit_rows(nets, setup.base) : preset_rows(presets, nets, setup.base, o.ema_precision == "fp32");
  FdRun fd = open_fd(o, setup.device, common_image_shape(rows), beside(o.out, ".features").string());
  check_same_files(ranks, nets.file_hashes());
  ensure_writable_parent(o.out);
  if (o.given("--report")) ensure_writable_parent(report_path(o).string());
  if (o.overwrite && ranks.root()) fs::remove_all(beside(o.out, ".features"));  // features an earlier run spilled

  run_rows(rows, setup.base, {"", o.grid_cols, o.quiet}, fd, ranks);
  if (!ranks.root()) return;
  estimate_rows(rows, fd, o.quiet);
  const auto diffs = paired_differences(rows, fd);
  write_png(o.out, rows_grid(rows, setup.base));
  write_file_atomic(beside(o.out, ".json").string(), results_json(rows, fd, diffs, o, setup.base).dump(2) + "\n");
  write_file_atomic(beside(o.out, ".csv").string(), results_csv(rows, fd));
  if (o.given("--report")) write_report(beside(o.out, ".json"), report_path(o));
  if (!fd.spaces.empty()) print_fds(rows, fd, diffs);
  if (!o.quiet)
    std::cerr << "autoguide: " << rows.size() << " rows -> " << o.out << ", " << beside(o.out, ".json").string()
              << ", " << beside(o.out, ".csv").string()
              << (o.given("--report") ? ", " + report_path(o).string() : "") << "\n";
}

}  // namespace

void add_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand("compare", subcommand_help("compare"));
  static Params o;
  o.seeds = "0-7";
  add_options(*cmd, o);
  cmd->footer(
      "Examples:\n"
      "  autoguide compare --net main.pt --gnet guide.pt --ag 2.1 --uncond uncond.pt --cfg 1.4 --out cmp.png\n"
      "  autoguide compare --net main.pt --gnet guide.pt --ag 2 --uncond uncond.pt --cfg 1.4 --alpha 0.5 "
      "--detector det.pt --ref ref.npz --num 500 --out cmp.png\n"
      "  autoguide compare --preset edm2-img512-s-fid --preset edm2-img512-s-autog-fid --out cmp.png");
  cmd->callback([cmd] { run_as_rank(*cmd, o.dist_timeout, [](const Ranks& ranks) {
    if (o.out.empty()) throw UsageError("nothing to write: give --out FILE.png");
    CompareRun(o, ranks).run();
  }); });
}

}  // namespace autoguide::cli
