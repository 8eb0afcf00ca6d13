// `autoguide compare`: no guidance, CFG, autoguidance (and their mix) side by side on the same seeds, as one
// labelled grid; with a detector, the FD of each row on stdout. Rows come from nets and weights given one by
// one, or from presets (one row each).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "atomic_file.hpp"
#include "autoguide/error.hpp"
#include "autoguide/format.hpp"
#include "autoguide/png.hpp"
#include "autoguide/preset.hpp"
#include "commands.hpp"
#include "fd_options.hpp"
#include "nets.hpp"
#include "rows.hpp"
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
      std::cout << "\t" << fd_label(spaces, k) << " " << format_number(r.fd[k]);
    }
    std::cout << "\n";
  }
}

void CompareRun::run() {
  const SamplingSetup setup = resolve_sampling(o, fd_seeds(o), ranks.shard());
  ranks.use_device(setup.device);
  std::string vae = o.vae;
  const std::vector<PresetRow> presets = o.presets.empty() ? std::vector<PresetRow>{} : locate_presets(setup, vae);
  if (!o.overwrite && file_exists(o.out)) throw UsageError(o.out + " already exists; add --overwrite to replace it");
  std::optional<OutputLock> lock;  // one run at a time writes --out (rank 0 claims for all ranks)
  if (ranks.root()) lock.emplace(OutputLock::claim_file(o.out, "--out"));

  NetCache nets(setup, vae);
  std::vector<Row> rows = presets.empty() ? explicit_rows(nets, setup.base) : preset_rows(presets, nets, setup.base);
  std::vector<FdSpace> spaces = open_fd(o, setup.device, common_image_shape(rows));
  check_same_files(ranks, nets.file_hashes());
  ensure_writable_parent(o.out);

  run_rows(rows, setup.base, {"", o.grid_cols, o.quiet}, spaces, ranks);
  if (!ranks.root()) return;
  write_png(o.out, rows_grid(rows, setup.base));
  if (!spaces.empty()) print_fds(rows, spaces);
  if (!o.quiet) std::cerr << "autoguide: " << rows.size() << " rows -> " << o.out << "\n";
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
