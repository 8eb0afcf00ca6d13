// `autoguide generate`: EDM2's generate_images.py, with autoguidance or CFG, PNG/grid/npy outputs.
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>

#include "autoguide/atomic_file.hpp"
#include "autoguide/error.hpp"
#include "autoguide/generate.hpp"
#include "autoguide/grid.hpp"
#include "autoguide/image_output.hpp"
#include "autoguide/npy.hpp"
#include "autoguide/png.hpp"
#include "autoguide/preset.hpp"
#include "commands.hpp"
#include "nets.hpp"
#include "progress.hpp"
#include "sampling_options.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

namespace {

struct Options {
  std::string preset, net, gnet, uncond, outdir, npy, grid;
  double guidance = 1, alpha = std::nan("");
  bool subdirs = false, resume = false, overwrite = false;
  int grid_cols = 0;
  SamplingOptions sampling;
  CLI::Option *net_opt = nullptr, *gnet_opt = nullptr, *guidance_opt = nullptr;

  bool writes_images() const { return !outdir.empty() || !grid.empty(); }
};

// The request with the preset's nets, weight and VAE filled in where not given; every check that needs no
// net file done.
struct Request {
  SamplingSetup setup;
  std::string net, gnet, uncond, vae;
};

Request resolve_request(const Options& o) {
  Request r{resolve_sampling(o.sampling, o.sampling.seeds), o.net, o.gnet, o.uncond, o.sampling.vae};
  GenerateRequest& req = r.setup.base;
  req.guidance = o.guidance;
  req.alpha = o.alpha;
  if (!o.preset.empty()) {
    const Preset p = find_preset(o.preset);
    PresetLocator locate(r.setup.models);
    if (o.guidance_opt->count() == 0) req.guidance = p.guidance;
    const PresetFiles f = locate.locate(p, o.gnet_opt->count() == 0 && req.guidance != 1,
                                        !o.sampling.vae_given() && o.writes_images());  // latents alone need no VAE
    if (o.net_opt->count() == 0) r.net = f.net;
    if (o.gnet_opt->count() == 0) r.gnet = f.gnet;
    if (!o.sampling.vae_given()) r.vae = f.vae;
    locate.check();
  }
  if (r.net.empty()) throw UsageError("no main net: give --net MODEL.pt or --preset NAME");
  if (!o.writes_images() && o.npy.empty())
    throw UsageError("nothing to write: give --outdir DIR, --grid FILE or --npy FILE");
  validate_weight(req.guidance, "--guidance");
  if (!std::isnan(req.alpha) && r.uncond.empty())
    throw UsageError("--alpha mixes CFG into autoguidance and needs an unconditional net: add --uncond U.pt");
  if (req.guidance != 1 && r.gnet.empty())
    throw UsageError("--guidance " + std::to_string(req.guidance) + " needs a guiding net: add --gnet GUIDE.pt");
  if (req.guidance == 1 && !r.uncond.empty() && std::isnan(req.alpha))
    throw UsageError("--uncond is used with --alpha; for plain CFG pass the unconditional net as --gnet");
  return r;
}

// The loaded nets (the guides only where guidance is on) and the pixel decoder when images are written.
struct Opened {
  NetCache cache;
  Nets nets;
  PixelDecoder* decoder = nullptr;
  GuidanceMode mode = GuidanceMode::None;
};

void open_nets(const Request& r, const Options& o, Opened& n) {
  const GenerateRequest& req = r.setup.base;
  n.nets.main = &n.cache.get(r.net);
  if (req.guidance != 1) n.nets.guide = &n.cache.get(r.gnet);
  if (req.guidance != 1 && !r.uncond.empty()) n.nets.uncond = &n.cache.get(r.uncond);
  validate(req, n.nets);
  n.mode = run_mode(req, n.nets);
  const ModelInfo& info = n.nets.main->info();
  if (o.writes_images()) n.decoder = &n.cache.decoder(*n.nets.main);
  else if (!r.vae.empty() && o.sampling.vae_given() && !makes_latents(info))
    throw UsageError("--vae decodes latents, but " + r.net + " makes pixels (encoder " + info.encoder.type + "); drop --vae");
  const Denoiser* guide = n.nets.guide;
  if (guide && guide->loaded_param_count() > n.nets.main->loaded_param_count() && !o.sampling.quiet)
    std::cerr << "autoguide: warning: the guiding net has more parameters (" << human_count(guide->loaded_param_count())
              << ") than the main net (" << human_count(n.nets.main->loaded_param_count())
              << "); guidance works best with a weaker guide\n";
}

// Where each seed's PNG goes; refuses to replace earlier results unless asked (nothing a user already
// generated is lost) and proves the folders writable.
std::map<int64_t, std::string> plan_outputs(const Options& o, const GenerateRequest& req) {
  std::map<int64_t, std::string> paths;
  if (!o.outdir.empty())
    for (int64_t s : req.seeds) paths[s] = image_path(o.outdir, s, o.subdirs);
  if (!o.overwrite) {
    for (const auto& [seed, p] : paths)
      if (!o.resume && file_exists(p))
        throw UsageError(p + " already exists; add --resume to keep finished images or --overwrite to replace them");
    for (const auto& f : {o.npy, o.grid})
      if (!f.empty() && file_exists(f)) throw UsageError(f + " already exists; add --overwrite to replace it");
  }
  if (!o.outdir.empty()) ensure_writable_dir(o.outdir);
  if (!o.npy.empty()) ensure_writable_parent(o.npy);
  if (!o.grid.empty()) ensure_writable_parent(o.grid);
  return paths;
}

// What the run made, for the grid, the .npy, the manifest and the summary.
struct Made {
  std::map<int64_t, torch::Tensor> images;  // for the grid, by seed
  std::vector<torch::Tensor> raw;           // for --npy, in seed order
  std::vector<nlohmann::json> records;      // per image, for the manifest
  int64_t kept = 0;                         // finished by an earlier run (--resume)
  GenerateProgress done;
  double seconds = 0;
};

// With --resume, a batch whose PNGs are all complete is kept as it is.
bool keep_finished(const Options& o, const std::map<int64_t, std::string>& paths, const std::vector<int64_t>& batch,
                   Made& made) {
  if (!o.resume || o.outdir.empty() || !o.npy.empty()) return false;
  for (int64_t s : batch)
    if (!png_is_complete(paths.at(s))) return false;
  for (int64_t s : batch) {
    if (!o.grid.empty()) made.images[s] = read_png(paths.at(s));
    made.records.push_back({{"seed", s}, {"file", fs::relative(paths.at(s), o.outdir).string()}, {"resumed", true}});
  }
  made.kept += static_cast<int64_t>(batch.size());
  return true;
}

Made sample_and_write(const Options& o, const Request& r, Opened& n, const std::map<int64_t, std::string>& paths,
                      const nlohmann::json& params) {
  Made made;
  auto sink = [&](const BatchResult& b, const torch::Tensor& pixels) {
    if (!o.npy.empty()) made.raw.push_back(b.samples.to(torch::kCPU));
    for (size_t k = 0; k < b.seeds.size(); ++k) {
      const int64_t seed = b.seeds[k], i = static_cast<int64_t>(k);
      nlohmann::json rec = {{"seed", seed}};
      if (b.classes.defined()) rec["class"] = b.classes[i].item<int64_t>();
      if (!o.grid.empty()) made.images[seed] = pixels[i];
      if (!o.outdir.empty()) {
        write_sample_png(paths.at(seed), pixels[i], params, seed, rec.contains("class") ? rec["class"] : nlohmann::json());
        rec["file"] = fs::relative(paths.at(seed), o.outdir).string();
      }
      made.records.push_back(rec);
    }
  };
  ProgressLine line(!o.sampling.quiet);
  auto progress = [&](const GenerateProgress& p) {
    line.update(p.fraction(), "image " + std::to_string(p.images_done) + "/" + std::to_string(p.images_total) +
                                  "  step " + std::to_string(p.step) + "/" + std::to_string(p.num_steps));
  };
  auto skip = [&](const std::vector<int64_t>& batch) { return keep_finished(o, paths, batch, made); };
  made.done = generate_images(n.nets, r.setup.base, n.decoder, skip, sink, progress);
  line.finish();
  made.seconds = line.elapsed();
  return made;
}

nlohmann::json manifest(const Options& o, const Request& r, const Opened& n, const nlohmann::json& params,
                        const Made& made) {
  nlohmann::json m = params;
  m["seeds"] = o.sampling.seeds;
  m["class_idx"] = o.sampling.class_idx >= 0 ? nlohmann::json(o.sampling.class_idx) : nlohmann::json();
  m["batch"] = o.sampling.batch;
  m["device"] = r.setup.device.str();
  for (const auto& [role, net] : {std::pair{"net", n.nets.main}, {"gnet", n.nets.guide}, {"uncond", n.nets.uncond}})
    if (net) m[std::string(role) + "_file"] = net->path(), m[std::string(role) + "_sha256_full"] = net->file_sha256();
  if (n.decoder && n.decoder->vae()) {
    m["vae_file"] = n.decoder->vae()->path(), m["vae_sha256_full"] = n.decoder->vae()->file_sha256();
    m["vae_batch"] = n.decoder->vae_batch();
    m["vae_decode_seconds"] = n.decoder->vae_seconds();
  }
  m["images"] = made.records;
  m["seconds"] = made.seconds;
  m["network_evaluations"] = {{"main", made.done.main_evals}, {"guide", made.done.guide_evals}};
  return m;
}

void write_collected(const Options& o, const Request& r, const Opened& n, const nlohmann::json& params, const Made& made) {
  const ModelInfo& info = n.nets.main->info();
  if (!o.npy.empty())
    write_npy(o.npy, made.raw.empty() ? torch::empty({0, info.img_channels, info.img_resolution, info.img_resolution})
                                      : torch::cat(made.raw));
  if (!o.grid.empty()) {
    std::vector<torch::Tensor> ordered;
    for (int64_t s : r.setup.base.seeds) ordered.push_back(made.images.at(s));
    write_png(o.grid, make_grid(torch::stack(ordered), o.grid_cols), {{"parameters", params.dump()}});
  }
  if (!o.outdir.empty())
    write_file_atomic((fs::path(o.outdir) / "manifest.json").string(), manifest(o, r, n, params, made).dump(2) + "\n");
}

void summarise(const Options& o, const Request& r, const Opened& n, const Made& made) {
  if (o.sampling.quiet) return;
  const int64_t made_now = static_cast<int64_t>(r.setup.base.seeds.size()) - made.kept;
  const double secs = made.seconds;
  std::cerr << "autoguide: " << made_now << " images (" << to_string(n.mode) << ", w=" << r.setup.base.guidance
            << ") in " << secs << " s, " << (secs > 0 ? made_now / secs : 0.0) << " images/s"
            << (made.kept ? ", " + std::to_string(made.kept) + " kept from an earlier run" : "")
            << "; batched network evaluations: main " << made.done.main_evals << ", guides " << made.done.guide_evals;
  if (!o.outdir.empty()) std::cerr << "; wrote " << o.outdir;
  if (!o.grid.empty()) std::cerr << "; grid " << o.grid;
  if (!o.npy.empty()) std::cerr << "; npy " << o.npy;
  if (n.decoder && n.decoder->vae()) std::cerr << "; VAE decode " << n.decoder->vae_seconds() << " s";
  std::cerr << "\n";
}

void run(const Options& o) {
  const Request r = resolve_request(o);
  Opened n{NetCache(r.setup, r.vae, ", or use only --npy FILE to save the latents")};
  open_nets(r, o, n);
  const std::map<int64_t, std::string> paths = plan_outputs(o, r.setup.base);
  nlohmann::json params = sample_parameters(r.setup.base, n.nets, n.mode, n.decoder);
  if (!o.preset.empty()) params["preset"] = o.preset;
  const Made made = sample_and_write(o, r, n, paths, params);
  write_collected(o, r, n, params, made);
  summarise(o, r, n, made);
}

}  // namespace

void add_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate images (EDM2 generate_images.py, plus autoguidance)");
  static Options o;
  cmd->add_option("--preset", o.preset, "Configuration preset (autoguide presets lists them)");
  o.net_opt = cmd->add_option("--net", o.net, "Main network (.pt from scripts/export_edm2.py)");
  o.gnet_opt = cmd->add_option("--gnet", o.gnet, "Guiding network: a weaker net (autoguidance) or an unconditional one (CFG)");
  o.guidance_opt = cmd->add_option("--guidance", o.guidance, "Guidance weight w; 1 = no guidance");
  cmd->add_option("--uncond", o.uncond, "Unconditional net for the CFG + autoguidance mix (with --alpha)");
  cmd->add_option("--alpha", o.alpha, "Share of autoguidance in the mix: 1 = pure autoguidance, 0 = pure CFG");
  cmd->add_option("--outdir", o.outdir, "Folder for the PNGs (EDM2 layout: 000016.png ...)");
  cmd->add_flag("--subdirs", o.subdirs, "One subfolder per 1000 seeds");
  cmd->add_option("--grid", o.grid, "Also write all images as one grid PNG");
  cmd->add_option("--grid-cols,--grid_cols", o.grid_cols, "Grid columns (default: near square)");
  cmd->add_option("--npy", o.npy, "Write the raw float32 samples [N,C,H,W] in seed order");
  cmd->add_flag("--resume", o.resume, "Keep complete images from an earlier run and generate the rest");
  cmd->add_flag("--overwrite", o.overwrite, "Replace existing output files");
  o.sampling.seeds = "16-19";  // EDM2's default
  add_sampling_options(*cmd, o.sampling, "Seeds, e.g. 0-63 or 1,2,5-10");
  cmd->callback([] { run(o); });
}

}  // namespace autoguide::cli
