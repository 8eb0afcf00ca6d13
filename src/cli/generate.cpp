// `autoguide generate`: EDM2's generate_images.py, with autoguidance or CFG, PNG/grid/npy outputs.
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "autoguide/atomic_file.hpp"
#include "autoguide/error.hpp"
#include "autoguide/generate.hpp"
#include "autoguide/grid.hpp"
#include "autoguide/image_output.hpp"
#include "autoguide/npy.hpp"
#include "autoguide/png.hpp"
#include "autoguide/preset.hpp"
#include "autoguide/stop.hpp"
#include "commands.hpp"
#include "nets.hpp"
#include "progress.hpp"
#include "ranks.hpp"
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

Request resolve_request(const Options& o, const Shard& shard) {
  Request r{resolve_sampling(o.sampling, o.sampling.seeds, shard), o.net, o.gnet, o.uncond, o.sampling.vae};
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

void open_nets(const Request& r, const Options& o, Opened& n, bool speak) {
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
  if (guide && guide->loaded_param_count() > n.nets.main->loaded_param_count() && speak)
    std::cerr << "autoguide: warning: the guiding net has more parameters (" << human_count(guide->loaded_param_count())
              << ") than the main net (" << human_count(n.nets.main->loaded_param_count())
              << "); guidance works best with a weaker guide\n";
}

// One run at a time writes a folder or file: a second run on the same target is refused with a line naming
// the process that holds it (rank 0 claims for all ranks).
std::vector<OutputLock> claim_outputs(const Options& o) {
  std::vector<OutputLock> locks;
  if (!o.outdir.empty()) locks.push_back(OutputLock::claim_folder(o.outdir, "--outdir"));
  if (!o.grid.empty()) locks.push_back(OutputLock::claim_file(o.grid, "--grid"));
  if (!o.npy.empty()) locks.push_back(OutputLock::claim_file(o.npy, "--npy"));
  return locks;
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

// The seeds still to make: all of them, or with --resume those without a complete PNG. Rank 0 looks and
// every rank gets its answer, so that all split the same list.
std::vector<int64_t> seeds_to_make(const Options& o, const std::map<int64_t, std::string>& paths,
                                   const std::vector<int64_t>& seeds, const Ranks& ranks) {
  if (!o.resume || o.outdir.empty() || !o.npy.empty()) return seeds;
  nlohmann::json todo = nlohmann::json::array();
  if (ranks.root())
    for (int64_t s : seeds)
      if (!png_is_complete(paths.at(s))) todo.push_back(s);
  if (ranks.group) todo = nlohmann::json::parse(ranks.group->broadcast_string(todo.dump()));
  return todo.get<std::vector<int64_t>>();
}

// What this rank made, for the grid, the .npy, the manifest and the summary.
struct Made {
  std::vector<torch::Tensor> pixels, samples;  // for --grid and --npy, by batch
  std::vector<int64_t> positions;              // of those images in the list of seeds made
  std::vector<nlohmann::json> records;         // per image, for the manifest
  std::vector<std::vector<int64_t>> batches;   // the seeds of each batch, for the manifest's rank entries
  GenerateProgress done;
  double seconds = 0;
};

// Fills `made` as batches finish, so that a run stopped by a signal still knows what it finished.
void sample_and_write(const Options& o, const Request& r, Opened& n, const std::map<int64_t, std::string>& paths,
                      const nlohmann::json& params, const Ranks& ranks, Made& made) {
  auto sink = [&](const BatchResult& b, const torch::Tensor& pixels) {
    made.batches.push_back(b.seeds);
    if (!o.npy.empty()) made.samples.push_back(b.samples.to(torch::kCPU));
    if (!o.grid.empty()) made.pixels.push_back(pixels);
    for (size_t k = 0; k < b.seeds.size(); ++k) {
      const int64_t seed = b.seeds[k], i = static_cast<int64_t>(k);
      nlohmann::json rec = {{"seed", seed}};
      if (b.classes.defined()) rec["class"] = b.classes[i].item<int64_t>();
      if (!o.outdir.empty()) {
        write_sample_png(paths.at(seed), pixels[i], params, seed, rec.contains("class") ? rec["class"] : nlohmann::json());
        rec["file"] = fs::relative(paths.at(seed), o.outdir).string();
      }
      made.records.push_back(rec);
      made.positions.push_back(b.first + i);
    }
  };
  const GenerateRequest& req = r.setup.base;
  ProgressLine line(!o.sampling.quiet && ranks.root());
  GenerateProgress now;
  auto draw = [&] {  // every rank's images, and this rank's running batch
    const double done = ranks.images_done(now.fraction() * static_cast<double>(now.images_total));
    line.update(done / static_cast<double>(req.seeds.size()), done,
                "image " + std::to_string(static_cast<int64_t>(done)) + "/" + std::to_string(req.seeds.size()) +
                    "  step " + std::to_string(now.step) + "/" + std::to_string(now.num_steps));
  };
  auto progress = [&](const GenerateProgress& p) {
    now = made.done = p;
    made.seconds = line.elapsed();
    draw();
    ranks.check();
  };
  made.done = generate_images(n.nets, req, n.decoder, sink, progress);
  now = made.done;
  ranks.barrier(draw);
  line.finish();
  made.seconds = line.elapsed();
}

// Every rank's part of the run, on rank 0: records and network evaluations summed; images and samples in
// the order of the seeds made.
struct Collected {
  std::vector<nlohmann::json> records;
  int64_t main_evals = 0, guide_evals = 0;
  torch::Tensor pixels, samples;
  nlohmann::json ranks;
};

torch::Tensor in_order(const Ranks& ranks, const std::vector<torch::Tensor>& parts, const std::vector<int64_t>& positions,
                       int64_t total, torch::IntArrayRef shape, torch::ScalarType dtype) {
  std::vector<int64_t> empty = {0};
  empty.insert(empty.end(), shape.begin(), shape.end());
  const torch::Tensor mine = parts.empty() ? torch::empty(empty, dtype) : torch::cat(parts).to(torch::kCPU);
  return gather_in_order(ranks.get(), mine, positions, total);
}

Collected collect(const Options& o, const Request& r, const Opened& n, const Made& made, const Ranks& ranks) {
  Collected c;
  const ModelInfo& info = n.nets.main->info();
  const auto total = static_cast<int64_t>(r.setup.base.seeds.size());
  if (!o.grid.empty()) c.pixels = in_order(ranks, made.pixels, made.positions, total, n.decoder->image_shape(), torch::kUInt8);
  if (!o.npy.empty())
    c.samples = in_order(ranks, made.samples, made.positions, total,
                         {info.img_channels, info.img_resolution, info.img_resolution}, torch::kFloat32);
  nlohmann::json mine = ranks.times();
  mine["images"] = made.records.size();
  mine["batches"] = made.batches;
  mine["seconds"] = made.seconds;
  mine["network_evaluations"] = {{"main", made.done.main_evals}, {"guide", made.done.guide_evals}};
  mine["records"] = made.records;
  std::vector<nlohmann::json> entries;
  for (auto& e : ranks.gather_json(mine)) {
    for (auto& rec : e["records"]) c.records.push_back(rec);
    c.main_evals += e["network_evaluations"]["main"].get<int64_t>();
    c.guide_evals += e["network_evaluations"]["guide"].get<int64_t>();
    e.erase("records");
    entries.push_back(e);
  }
  c.ranks = ranks.describe(entries);
  return c;
}

nlohmann::json manifest(const Options& o, const Request& r, const Opened& n, const nlohmann::json& params,
                        const Collected& all, double seconds) {
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
  m["images"] = all.records;
  m["complete"] = true;  // false in the manifest of a run stopped by a signal
  m["seconds"] = seconds;
  m["network_evaluations"] = {{"main", all.main_evals}, {"guide", all.guide_evals}};
  if (!all.ranks.is_null()) m["ranks"] = all.ranks;
  return m;
}

// The records of the seeds kept from an earlier run (--resume) joined with those made, in seed order.
std::vector<nlohmann::json> all_records(const Options& o, const std::vector<int64_t>& seeds,
                                        const std::map<int64_t, std::string>& paths, std::vector<nlohmann::json> made) {
  std::map<int64_t, nlohmann::json> by_seed;
  for (auto& rec : made) {
    const auto seed = rec["seed"].get<int64_t>();
    by_seed[seed] = std::move(rec);
  }
  std::vector<nlohmann::json> records;
  for (int64_t s : seeds) {
    auto it = by_seed.find(s);
    records.push_back(it != by_seed.end() ? it->second
                                          : nlohmann::json{{"seed", s},
                                                           {"file", fs::relative(paths.at(s), o.outdir).string()},
                                                           {"resumed", true}});
  }
  return records;
}

// The grid's images in seed order: made now, or read back where kept from an earlier run.
torch::Tensor grid_images(const std::vector<int64_t>& seeds, const std::vector<int64_t>& made_seeds,
                          const torch::Tensor& made, const std::map<int64_t, std::string>& paths) {
  std::map<int64_t, torch::Tensor> by_seed;
  for (size_t i = 0; i < made_seeds.size(); ++i) by_seed[made_seeds[i]] = made[static_cast<int64_t>(i)];
  std::vector<torch::Tensor> ordered;
  for (int64_t s : seeds) ordered.push_back(by_seed.count(s) ? by_seed.at(s) : read_png(paths.at(s)));
  return torch::stack(ordered);
}

void write_collected(const Options& o, const Request& r, const Opened& n, const nlohmann::json& params,
                     const Collected& all, const std::vector<int64_t>& seeds, const std::map<int64_t, std::string>& paths,
                     double seconds) {
  if (!o.npy.empty()) write_npy(o.npy, all.samples);
  if (!o.grid.empty())
    write_png(o.grid, make_grid(grid_images(seeds, r.setup.base.seeds, all.pixels, paths), o.grid_cols),
              {{"parameters", params.dump()}});
  if (!o.outdir.empty())
    write_file_atomic((fs::path(o.outdir) / "manifest.json").string(), manifest(o, r, n, params, all, seconds).dump(2) + "\n");
}

void summarise(const Options& o, const Request& r, const Opened& n, const Collected& all, int64_t kept, double secs,
               int world) {
  const auto made_now = static_cast<int64_t>(r.setup.base.seeds.size());
  std::cerr << "autoguide: " << made_now << " images (" << to_string(n.mode) << ", w=" << r.setup.base.guidance
            << ") in " << secs << " s, " << (secs > 0 ? made_now / secs : 0.0) << " images/s"
            << (world > 1 ? " on " + std::to_string(world) + " ranks" : "")
            << (kept ? ", " + std::to_string(kept) + " kept from an earlier run" : "")
            << "; batched network evaluations: main " << all.main_evals << ", guides " << all.guide_evals;
  if (!o.outdir.empty()) std::cerr << "; wrote " << o.outdir;
  if (!o.grid.empty()) std::cerr << "; grid " << o.grid;
  if (!o.npy.empty()) std::cerr << "; npy " << o.npy;
  if (n.decoder && n.decoder->vae()) std::cerr << "; VAE decode " << n.decoder->vae_seconds() << " s";
  std::cerr << "\n";
}

// SIGTERM or SIGINT stopped the run between batches (here, or on another rank that then failed the job):
// rank 0 writes the manifest of the images finished so far (its own, and complete PNGs the other ranks or an
// earlier run left), marked incomplete; no collective runs, as other ranks may be gone. The error says how far
// the run got and how to finish it.
[[noreturn]] void stopped(const Options& o, const Request& r, const Opened& n, const nlohmann::json& params,
                          const std::vector<int64_t>& seeds, const std::map<int64_t, std::string>& paths,
                          const Made& made, const Ranks& ranks) {
  const int sig = stop_signal();
  const std::set<int64_t> todo(r.setup.base.seeds.begin(), r.setup.base.seeds.end());
  int64_t done = static_cast<int64_t>(seeds.size() - todo.size() + made.records.size());
  if (ranks.root() && !o.outdir.empty()) {
    std::map<int64_t, nlohmann::json> mine;
    for (const auto& rec : made.records) mine[rec["seed"].get<int64_t>()] = rec;
    Collected finished;
    for (int64_t s : seeds) {
      if (mine.count(s)) {
        finished.records.push_back(mine.at(s));
      } else if (png_is_complete(paths.at(s))) {
        nlohmann::json rec = {{"seed", s}, {"file", fs::relative(paths.at(s), o.outdir).string()}};
        if (!todo.count(s)) rec["resumed"] = true;
        finished.records.push_back(rec);
      }
    }
    finished.main_evals = made.done.main_evals, finished.guide_evals = made.done.guide_evals;
    done = static_cast<int64_t>(finished.records.size());
    nlohmann::json m = manifest(o, r, n, params, finished, made.seconds);
    m["complete"] = false;
    m["interrupted"] = {{"signal", signal_name(sig)}, {"images_done", done}, {"images_total", seeds.size()}};
    write_file_atomic((fs::path(o.outdir) / "manifest.json").string(), m.dump(2) + "\n");
  }
  throw Interrupted(sig, "interrupted by " + signal_name(sig) + " at image " + std::to_string(done) + "/" +
                             std::to_string(seeds.size()) + "; rerun the same command" +
                             (o.outdir.empty() ? "" : " with --resume to finish"));
}

void run(const Options& o, const Ranks& ranks) {
  Request r = resolve_request(o, ranks.shard());
  ranks.use_device(r.setup.device);
  Opened n{NetCache(r.setup, r.vae, ", or use only --npy FILE to save the latents")};
  open_nets(r, o, n, !o.sampling.quiet && ranks.root());
  check_same_files(ranks, n.cache.file_hashes());
  const std::vector<OutputLock> locks = ranks.root() ? claim_outputs(o) : std::vector<OutputLock>{};
  const std::map<int64_t, std::string> paths = plan_outputs(o, r.setup.base);
  if (!o.outdir.empty()) check_shared_folder(ranks, o.outdir);
  nlohmann::json params = sample_parameters(r.setup.base, n.nets, n.mode, n.decoder);
  if (!o.preset.empty()) params["preset"] = o.preset;
  const std::vector<int64_t> seeds = r.setup.base.seeds;
  r.setup.base.seeds = seeds_to_make(o, paths, seeds, ranks);
  Made made;
  try {
    sample_and_write(o, r, n, paths, params, ranks, made);
  } catch (...) {
    if (!stop_requested()) throw;
    stopped(o, r, n, params, seeds, paths, made, ranks);
  }
  Collected all = collect(o, r, n, made, ranks);
  if (!ranks.root()) return;
  all.records = all_records(o, seeds, paths, std::move(all.records));
  write_collected(o, r, n, params, all, seeds, paths, made.seconds);
  const auto kept = static_cast<int64_t>(seeds.size() - r.setup.base.seeds.size());
  if (!o.sampling.quiet) summarise(o, r, n, all, kept, made.seconds, ranks.launch.world);
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
  cmd->callback([cmd] { run_as_rank(*cmd, o.sampling.dist_timeout, [](const Ranks& ranks) { run(o, ranks); }); });
}

}  // namespace autoguide::cli
