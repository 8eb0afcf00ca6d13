// `autoguide compare`: no guidance, CFG, autoguidance (and their mix) side by side on the same seeds, as one
// labelled grid; with a detector, the FD of each row on stdout. Rows come from nets and weights given one by
// one, or from presets (one row each).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "atomic_file.hpp"
#include "autoguide/error.hpp"
#include "autoguide/png.hpp"
#include "autoguide/preset.hpp"
#include "commands.hpp"
#include "fd_options.hpp"
#include "nets.hpp"
#include "rows.hpp"
#include "sampling_options.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

namespace {

struct CompareOptions {
  std::vector<std::string> presets;
  std::string net, gnet, uncond, out;
  double ag = std::nan(""), cfg = std::nan(""), alpha = std::nan(""), mix = std::nan("");
  int grid_cols = 16;
  bool overwrite = false;
  SamplingOptions sampling;
  FdOptions fd;
};

std::string label(GuidanceMode mode, double w, double alpha = std::nan("")) {
  std::string l = to_string(mode) + " w=" + format_weight(w);
  if (!std::isnan(alpha)) l += " a=" + format_weight(alpha);
  return l;
}

void check_explicit(const CompareOptions& o) {
  if (o.net.empty()) throw UsageError("no main net: give --net MODEL.pt or --preset NAME (repeatable)");
  if (o.gnet.empty() && o.uncond.empty())
    throw UsageError("nothing to compare: give --gnet G.pt --ag W (autoguidance) and/or --uncond U.pt --cfg W (CFG)");
  if (!o.gnet.empty() && std::isnan(o.ag)) throw UsageError("--gnet needs its weight: add --ag W (e.g. 2.1)");
  if (!o.uncond.empty() && std::isnan(o.cfg)) throw UsageError("--uncond needs its weight: add --cfg W (e.g. 1.4)");
  if (o.gnet.empty() && !std::isnan(o.ag)) throw UsageError("--ag weighs the autoguidance guide: add --gnet G.pt");
  if (o.uncond.empty() && !std::isnan(o.cfg)) throw UsageError("--cfg weighs the unconditional net: add --uncond U.pt");
  if (!std::isnan(o.alpha) && (o.gnet.empty() || o.uncond.empty()))
    throw UsageError("--alpha mixes CFG with autoguidance and needs both --gnet and --uncond");
  if (!std::isnan(o.mix) && std::isnan(o.alpha)) throw UsageError("--mix is the weight of the mixed row: add --alpha A");
  for (const auto& [w, name] : std::vector<std::pair<double, std::string>>{{o.ag, "--ag"}, {o.cfg, "--cfg"}, {o.mix, "--mix"}})
    if (!std::isnan(w)) validate_weight(w, name);
}

// None, then CFG, autoguidance and the mix where their nets are given.
std::vector<Row> explicit_rows(const CompareOptions& o, NetCache& nets, const GenerateRequest& base) {
  const Denoiser& main = nets.get(o.net);
  const Denoiser* gnet = o.gnet.empty() ? nullptr : &nets.get(o.gnet);
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
    add({&main, uncond}, o.cfg, std::nan(""), GuidanceMode::CFG,
        "--uncond must be an unconditional net guiding a conditional main net (CFG)");
  if (gnet)
    add({&main, gnet}, o.ag, std::nan(""), GuidanceMode::Autoguidance,
        "--gnet must be conditioned like the main net (autoguidance); pass an unconditional guide as --uncond");
  if (!std::isnan(o.alpha))
    add({&main, gnet, uncond}, std::isnan(o.mix) ? o.ag : o.mix, o.alpha, GuidanceMode::Mixed, "");
  return rows;
}

struct PresetRow {
  Preset preset;
  PresetFiles files;
};

// The presets and their files (every missing file of every preset listed at once); the VAE they share.
std::vector<PresetRow> locate_presets(const CompareOptions& o, const SamplingSetup& setup, std::string& vae) {
  if (!o.net.empty() || !o.gnet.empty() || !o.uncond.empty() || !std::isnan(o.ag) || !std::isnan(o.cfg) ||
      !std::isnan(o.alpha) || !std::isnan(o.mix))
    throw UsageError("--preset rows bring their own nets and weights; drop --net/--gnet/--uncond/--ag/--cfg/"
                     "--alpha/--mix, or drop --preset");
  PresetLocator locator(setup.models);
  std::vector<PresetRow> rows;
  for (const auto& name : o.presets) {
    Preset p = find_preset(name);
    rows.push_back({p, locator.locate(p, p.guidance != 1, !o.sampling.vae_given())});
  }
  locator.check();
  vae = o.sampling.vae;
  for (const auto& r : rows) {
    if (o.sampling.vae_given() || r.files.vae.empty()) continue;
    if (!vae.empty() && vae != r.files.vae)
      throw UsageError("presets " + rows.front().preset.name + " and " + r.preset.name +
                       " name different VAEs; give one with --vae");
    vae = r.files.vae;
  }
  return rows;
}

// One row per preset: its nets and weight, labelled with the preset, the mode, w and the main net.
std::vector<Row> preset_rows(const std::vector<PresetRow>& presets, NetCache& nets, const GenerateRequest& base) {
  std::vector<Row> rows;
  for (const auto& pr : presets) {
    const Denoiser& main = nets.get(pr.files.net);
    const Denoiser* guide = pr.files.gnet.empty() ? nullptr : &nets.get(pr.files.gnet);
    Row row;
    row.setting = {"", {&main, guide, nullptr}, pr.preset.guidance};
    row.decoder = &nets.decoder(main);
    row.provenance["preset"] = pr.preset.name;
    const GenerateRequest req = row.setting.request(base);
    validate(req, row.setting.nets);
    row.setting.label = pr.preset.name + ": " + label(run_mode(req, row.setting.nets), pr.preset.guidance) +
                        ", net " + fs::path(pr.files.net).stem().string();
    rows.push_back(row);
  }
  return rows;
}

// A line per row: its label, then the FD in each feature space ("fd X" with one detector).
void print_fds(const std::vector<Row>& rows, const std::vector<FdSpace>& spaces) {
  for (const auto& r : rows) {
    std::cout << r.setting.label;
    for (size_t k = 0; k < r.fd.size(); ++k) {
      char v[64];
      std::snprintf(v, sizeof v, "%.10g", r.fd[k]);
      std::cout << "\t" << fd_label(spaces, k) << " " << v;
    }
    std::cout << "\n";
  }
}

void run_compare(CompareOptions& o, const Ranks& ranks) {
  if (o.out.empty()) throw UsageError("nothing to write: give --out FILE.png");
  if (o.presets.empty()) check_explicit(o);
  const SamplingSetup setup = resolve_sampling(o.sampling, fd_seeds(o.fd, o.sampling), ranks.shard());
  ranks.use_device(setup.device);
  std::string vae = o.sampling.vae;
  const std::vector<PresetRow> presets = o.presets.empty() ? std::vector<PresetRow>{} : locate_presets(o, setup, vae);
  if (!o.overwrite && file_exists(o.out)) throw UsageError(o.out + " already exists; add --overwrite to replace it");
  std::optional<OutputLock> lock;  // one run at a time writes --out (rank 0 claims for all ranks)
  if (ranks.root()) lock.emplace(OutputLock::claim_file(o.out, "--out"));

  NetCache nets(setup, vae);
  std::vector<Row> rows = presets.empty() ? explicit_rows(o, nets, setup.base) : preset_rows(presets, nets, setup.base);
  std::vector<FdSpace> spaces = open_fd(o.fd, setup.device, common_image_shape(rows));
  check_same_files(ranks, nets.file_hashes());
  ensure_writable_parent(o.out);

  run_rows(rows, setup.base, {"", o.grid_cols, o.sampling.quiet}, spaces, ranks);
  if (!ranks.root()) return;
  write_png(o.out, rows_grid(rows, setup.base));
  if (!spaces.empty()) print_fds(rows, spaces);
  if (!o.sampling.quiet) std::cerr << "autoguide: " << rows.size() << " rows -> " << o.out << "\n";
}

}  // namespace

void add_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "compare", "No guidance, CFG and autoguidance (and their mix) side by side on the same seeds; FD per row");
  static CompareOptions o;
  cmd->add_option("--preset", o.presets, "A row per preset, with its nets, weight and VAE (repeat for more rows)");
  cmd->add_option("--net", o.net, "Main network (.pt from scripts/export_edm2.py)");
  cmd->add_option("--gnet", o.gnet, "Autoguidance guide: a weaker version of the main net");
  cmd->add_option("--ag", o.ag, "Autoguidance weight for --gnet");
  cmd->add_option("--uncond", o.uncond, "Unconditional net for the CFG row");
  cmd->add_option("--cfg", o.cfg, "CFG weight for --uncond");
  cmd->add_option("--alpha", o.alpha, "Add a CFG + autoguidance row with this share of autoguidance (0..1)");
  cmd->add_option("--mix", o.mix, "Weight of the mixed row (default: --ag)");
  cmd->add_option("--out", o.out, "Grid PNG to write: one labelled row per mode, one column per seed");
  cmd->add_flag("--overwrite", o.overwrite, "Replace --out if it exists");
  add_grid_cols_option(*cmd, o.grid_cols);
  o.sampling.seeds = "0-7";
  add_sampling_options(*cmd, o.sampling, "Seeds, the same for every row (or 0..N-1 with --num N)");
  add_fd_options(*cmd, o.fd);
  cmd->callback([cmd] { run_as_rank(*cmd, o.sampling.dist_timeout, [](const Ranks& ranks) { run_compare(o, ranks); }); });
}

}  // namespace autoguide::cli
