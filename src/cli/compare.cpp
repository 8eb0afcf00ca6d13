// `autoguide compare`: no guidance, CFG, autoguidance (and their mix) side by side on the same seeds, as one
// labelled grid; with a detector, the FD of each row on stdout.
#include <cmath>
#include <cstdio>
#include <iostream>

#include "autoguide/atomic_file.hpp"
#include "autoguide/error.hpp"
#include "autoguide/png.hpp"
#include "commands.hpp"
#include "device.hpp"
#include "settings.hpp"

namespace autoguide::cli {

namespace {

struct CompareOptions {
  std::string net, gnet, uncond, out;
  double ag = std::nan(""), cfg = std::nan(""), alpha = std::nan(""), mix = std::nan("");
  bool overwrite = false;
  SamplingOptions sampling;
};

std::string label(GuidanceMode mode, double w, double alpha = std::nan("")) {
  std::string l = to_string(mode) + " w=" + format_weight(w);
  if (!std::isnan(alpha)) l += " a=" + format_weight(alpha);
  return l;
}

void run_compare(CompareOptions& o) {
  if (o.net.empty()) throw UsageError("no main net: give --net MODEL.pt");
  if (o.out.empty()) throw UsageError("nothing to write: give --out FILE.png");
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
  const GenerateRequest base = base_request(o.sampling);
  if (!o.overwrite && file_exists(o.out)) throw UsageError(o.out + " already exists; add --overwrite to replace it");

  const torch::Device device = select_device(o.sampling.device, o.sampling.threads);
  NetCache nets(device, parse_precision(o.sampling.dtype, device));
  const Denoiser& main = nets.get(o.net);
  check_pixels(main);
  const Denoiser* gnet = o.gnet.empty() ? nullptr : &nets.get(o.gnet);
  const Denoiser* uncond = o.uncond.empty() ? nullptr : &nets.get(o.uncond);

  std::vector<Row> rows;
  auto add = [&](Nets n, double w, double alpha, GuidanceMode expected, const std::string& role) {
    Row row;
    row.setting = {"", n, w, alpha};
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
  std::optional<FdSetup> fd = open_fd(o.sampling, device, main.info());
  ensure_writable_parent(o.out);

  run_rows(rows, base, o.sampling, "", fd ? &*fd : nullptr);
  write_png(o.out, rows_grid(rows, base));
  if (fd)
    for (const auto& r : rows) {
      char line[64];
      std::snprintf(line, sizeof line, "%.10g", *r.fd);
      std::cout << r.setting.label << "\tfd " << line << "\n";
    }
  if (!o.sampling.quiet) std::cerr << "autoguide: " << rows.size() << " rows -> " << o.out << "\n";
}

}  // namespace

void add_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "compare", "No guidance, CFG and autoguidance (and their mix) side by side on the same seeds; FD per row");
  static CompareOptions o;
  cmd->add_option("--net", o.net, "Main network (.pt from scripts/export_edm2.py)");
  cmd->add_option("--gnet", o.gnet, "Autoguidance guide: a weaker version of the main net");
  cmd->add_option("--ag", o.ag, "Autoguidance weight for --gnet");
  cmd->add_option("--uncond", o.uncond, "Unconditional net for the CFG row");
  cmd->add_option("--cfg", o.cfg, "CFG weight for --uncond");
  cmd->add_option("--alpha", o.alpha, "Add a CFG + autoguidance row with this share of autoguidance (0..1)");
  cmd->add_option("--mix", o.mix, "Weight of the mixed row (default: --ag)");
  cmd->add_option("--out", o.out, "Grid PNG to write: one labelled row per mode, one column per seed");
  cmd->add_flag("--overwrite", o.overwrite, "Replace --out if it exists");
  add_sampling_options(*cmd, o.sampling);
  cmd->callback([] { run_compare(o); });
}

}  // namespace autoguide::cli
