// `autoguide generate`: EDM2's generate_images.py, with autoguidance or CFG, PNG/grid/npy outputs.
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "atomic_file.hpp"
#include "autoguide/error.hpp"
#include "autoguide/format.hpp"
#include "autoguide/generate.hpp"
#include "autoguide/grid.hpp"
#include "image_output.hpp"
#include "npy.hpp"
#include "autoguide/png.hpp"
#include "autoguide/preset.hpp"
#include "autoguide/stop.hpp"
#include "commands.hpp"
#include "nets.hpp"
#include "progress.hpp"
#include "ranks.hpp"
#include "option_values.hpp"
#include "sampling_options.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

namespace {

// The request with the preset's nets, weight and VAE filled in where not given; every check that needs no
// net file done.
struct Request {
  SamplingSetup setup;
  std::string net, gnet, uncond, vae;
  std::optional<EmaRequest> gnet_ema;  // --gnet-ema, or the preset's
};

// The loaded nets (the guides only where guidance is on) and the pixel decoder when images are written.
struct LoadedNets {
  NetCache cache;
  Nets nets;
  PixelDecoder* decoder = nullptr;
  GuidanceMode mode = GuidanceMode::None;
};

// What this rank made, for the grid, the .npy, the manifest and the summary.
struct RankOutput {
  std::vector<torch::Tensor> pixels, samples;  // for --grid and --npy, by batch
  std::vector<int64_t> positions;              // of those images in the list of seeds made
  std::vector<nlohmann::json> records;         // per image, for the manifest
  std::vector<std::vector<int64_t>> batches;   // the seeds of each batch, for the manifest's rank entries
  GenerateProgress done;
  double seconds = 0;
};

// Every rank's part of the run, on rank 0: records and network evaluations summed; images and samples in
// the order of the seeds made.
struct RunOutput {
  std::vector<nlohmann::json> records;
  int64_t main_evals = 0, guide_evals = 0;
  torch::Tensor pixels, samples;
  nlohmann::json ranks;
};

torch::Tensor in_order(const Ranks& ranks, const std::vector<torch::Tensor>& parts, const std::vector<int64_t>& positions,
                       int64_t total, torch::IntArrayRef shape) {
  std::vector<int64_t> empty = {0};
  empty.insert(empty.end(), shape.begin(), shape.end());
  const auto dtype = parts.empty() ? torch::kUInt8 : parts.front().scalar_type();
  const torch::Tensor mine = parts.empty() ? torch::empty(empty, dtype) : torch::cat(parts).to(torch::kCPU);
  return gather_in_order(ranks.get(), mine, positions, total);
}

// One `autoguide generate`: its options, request, nets and ranks, from the options to the files written.
class GenerateRun {
 public:
  GenerateRun(const Params& o, const Ranks& ranks) : o_(o), ranks_(ranks), r_(resolve()), n_{make_cache()} {}

  void run() {
    ranks_.use_device(r_.setup.device);
    open_nets(!o_.quiet && ranks_.root());
    check_same_files(ranks_, n_.cache.file_hashes());
    const std::vector<OutputLock> locks = ranks_.root() ? claim_outputs() : std::vector<OutputLock>{};
    plan_outputs();
    if (!o_.out.empty()) check_shared_folder(ranks_, o_.out);
    params_ = sample_parameters(r_.setup.base, n_.nets, n_.mode, n_.decoder);
    if (!o_.presets.empty()) params_["preset"] = o_.presets.front();
    seeds_ = r_.setup.base.seeds;
    r_.setup.base.seeds = seeds_to_make();
    RankOutput made;
    try {
      sample_and_write(made);
    } catch (...) {
      if (!stop_requested()) throw;
      stopped(made);
    }
    RunOutput all = collect(made);
    if (!ranks_.root()) return;
    all.records = all_records(std::move(all.records));
    write_collected(all, made.seconds);
    if (!o_.quiet) summarise(all, made.seconds);
  }

 private:
  bool writes_images() const { return !o_.out.empty() || !o_.grid.empty(); }
  Request resolve() const;
  NetCache make_cache() const { return NetCache(r_.setup, r_.vae, ", or use only --npy FILE to save the latents"); }
  void open_nets(bool speak);
  std::vector<OutputLock> claim_outputs() const;
  void plan_outputs();
  std::vector<int64_t> seeds_to_make() const;
  void sample_and_write(RankOutput& made);
  [[noreturn]] void stopped(const RankOutput& made) const;
  RunOutput collect(const RankOutput& made) const;
  nlohmann::json manifest(const RunOutput& all, double seconds) const;
  std::vector<nlohmann::json> all_records(std::vector<nlohmann::json> made) const;
  torch::Tensor grid_images(const torch::Tensor& made) const;
  void write_collected(const RunOutput& all, double seconds) const;
  void summarise(const RunOutput& all, double seconds) const;

  const Params& o_;
  const Ranks& ranks_;
  Request r_;
  LoadedNets n_;
  std::map<int64_t, std::string> paths_;  // each seed's PNG
  nlohmann::json params_;                 // recorded in every PNG and the manifest
  std::vector<int64_t> seeds_;            // all of the run's seeds (r_.setup.base.seeds: those made now)
};

Request GenerateRun::resolve() const {
  if (o_.presets.size() > 1) throw UsageError("generate takes one --preset; compare takes several (a row each)");
  if (o_.gnets.size() > 1) throw UsageError("generate takes one --gnet; sweep and compare take several");
  const std::vector<double> weights = parse_weights(o_.guidance);
  if (weights.size() != 1) throw UsageError("generate takes one --guidance weight; sweep takes a list or range");
  Request r{resolve_sampling(o_, o_.seeds, ranks_.shard()), o_.net, o_.gnets.empty() ? "" : o_.gnets.front(), o_.uncond,
            o_.vae};
  GenerateRequest& req = r.setup.base;
  req.guidance = weights.front();
  req.alpha = o_.alpha;
  r.gnet_ema = one_ema(o_.gnet_ema, "--gnet-ema", o_.ema_precision);
  if (!o_.presets.empty()) {
    const Preset p = find_preset(o_.presets.front());
    PresetLocator locate(r.setup.models);
    if (!o_.given("--guidance")) req.guidance = p.guidance;
    const PresetFiles f = locate.locate(p, !o_.given("--gnet") && req.guidance != 1,
                                        !o_.given("--vae") && writes_images());  // latents alone need no VAE
    if (!o_.given("--net")) r.net = f.net;
    if (!o_.given("--gnet")) r.gnet = f.gnet;
    if (!o_.given("--gnet") && !o_.given("--gnet-ema") && p.gnet_ema)
      r.gnet_ema = EmaRequest{*p.gnet_ema, std::nullopt, o_.ema_precision == "fp32"};
    if (!o_.given("--vae")) r.vae = f.vae;
    locate.check();
  }
  // --uncond on its own is CFG: the unconditional net is the guide.
  if (r.gnet.empty() && std::isnan(req.alpha)) std::swap(r.gnet, r.uncond);
  if (r.net.empty()) throw UsageError("no main net: give --net MODEL.pt or --preset NAME");
  if (!writes_images() && o_.npy.empty()) throw UsageError("nothing to write: give --out DIR, --grid FILE or --npy FILE");
  return r;
}

void GenerateRun::open_nets(bool speak) {
  const GenerateRequest& req = r_.setup.base;
  n_.nets.main = &n_.cache.get(r_.net, one_ema(o_.net_ema, "--net-ema", o_.ema_precision), "nets.main_ema");
  const bool guided = req.guidance != 1 || !std::isnan(req.alpha);  // w = 1 never evaluates a guide
  if (guided && !r_.gnet.empty())
    n_.nets.guide = &n_.cache.get(r_.gnet, r_.gnet_ema, "nets.guide_ema");
  if (guided && !r_.uncond.empty()) n_.nets.uncond = &n_.cache.get(r_.uncond);
  validate(req, n_.nets);
  n_.mode = run_mode(req, n_.nets);
  const ModelInfo& info = n_.nets.main->info();
  if (writes_images()) n_.decoder = &n_.cache.decoder(*n_.nets.main);
  else if (!r_.vae.empty() && o_.given("--vae") && !makes_latents(info))
    throw UsageError("--vae decodes latents, but " + r_.net + " makes pixels (encoder " + info.encoder.type + "); drop --vae");
  const Denoiser* guide = n_.nets.guide;
  if (guide && guide->loaded_param_count() > n_.nets.main->loaded_param_count() && speak)
    std::cerr << "autoguide: warning: the guiding net has more parameters (" << human_count(guide->loaded_param_count())
              << ") than the main net (" << human_count(n_.nets.main->loaded_param_count())
              << "); guidance works best with a weaker guide\n";
}

// One run at a time writes a folder or file: a second run on the same target is refused with a line naming
// the process that holds it (rank 0 claims for all ranks).
std::vector<OutputLock> GenerateRun::claim_outputs() const {
  std::vector<OutputLock> locks;
  if (!o_.out.empty()) locks.push_back(OutputLock::claim_folder(o_.out, "--out"));
  if (!o_.grid.empty()) locks.push_back(OutputLock::claim_file(o_.grid, "--grid"));
  if (!o_.npy.empty()) locks.push_back(OutputLock::claim_file(o_.npy, "--npy"));
  return locks;
}

// Where each seed's PNG goes; refuses to replace earlier results unless asked (nothing a user already
// generated is lost) and proves the folders writable.
void GenerateRun::plan_outputs() {
  if (!o_.out.empty())
    for (int64_t s : r_.setup.base.seeds) paths_[s] = image_path(o_.out, s, o_.subdirs);
  if (!o_.overwrite) {
    for (const auto& [seed, p] : paths_)
      if (!o_.resume && file_exists(p))
        throw UsageError(p + " already exists; add --resume to keep finished images or --overwrite to replace them");
    for (const auto& f : {o_.npy, o_.grid})
      if (!f.empty() && file_exists(f)) throw UsageError(f + " already exists; add --overwrite to replace it");
  }
  if (!o_.out.empty()) ensure_writable_dir(o_.out);
  if (!o_.npy.empty()) ensure_writable_parent(o_.npy);
  if (!o_.grid.empty()) ensure_writable_parent(o_.grid);
}

// The seeds still to make: all of them, or with --resume those without a complete PNG. Rank 0 looks and
// every rank gets its answer, so that all split the same list.
std::vector<int64_t> GenerateRun::seeds_to_make() const {
  if (!o_.resume || o_.out.empty() || !o_.npy.empty()) return seeds_;
  nlohmann::json todo = nlohmann::json::array();
  if (ranks_.root())
    for (int64_t s : seeds_)
      if (!png_is_complete(paths_.at(s))) todo.push_back(s);
  if (ranks_.group) todo = nlohmann::json::parse(ranks_.group->broadcast_string(todo.dump()));
  return todo.get<std::vector<int64_t>>();
}

// Fills `made` as batches finish, so that a run stopped by a signal still knows what it finished.
void GenerateRun::sample_and_write(RankOutput& made) {
  auto sink = [&](const BatchResult& b, const torch::Tensor& pixels) {
    made.batches.push_back(b.seeds);
    if (!o_.npy.empty()) made.samples.push_back(b.samples.to(torch::kCPU));
    if (!o_.grid.empty()) made.pixels.push_back(pixels);
    for (size_t k = 0; k < b.seeds.size(); ++k) {
      const int64_t seed = b.seeds[k], i = static_cast<int64_t>(k);
      nlohmann::json rec = {{"seed", seed}};
      if (b.classes.defined()) rec["class"] = b.classes[i].item<int64_t>();
      if (!o_.out.empty()) {
        write_sample_png(paths_.at(seed), pixels[i], params_, seed, rec.contains("class") ? rec["class"] : nlohmann::json());
        rec["file"] = fs::relative(paths_.at(seed), o_.out).string();
      }
      made.records.push_back(rec);
      made.positions.push_back(b.first + i);
    }
  };
  const GenerateRequest& req = r_.setup.base;
  ProgressLine line(!o_.quiet && ranks_.root());
  GenerateProgress now;
  auto draw = [&] {  // every rank's images, and this rank's running batch
    const double done = ranks_.images_done(now.fraction() * static_cast<double>(now.images_total));
    line.update(done / static_cast<double>(req.seeds.size()), done,
                "image " + std::to_string(static_cast<int64_t>(done)) + "/" + std::to_string(req.seeds.size()) +
                    "  step " + std::to_string(now.step) + "/" + std::to_string(now.num_steps));
  };
  auto progress = [&](const GenerateProgress& p) {
    now = made.done = p;
    made.seconds = line.elapsed();
    draw();
    ranks_.check();
  };
  made.done = generate_images(n_.nets, req, n_.decoder, sink, progress);
  now = made.done;
  ranks_.barrier(draw);
  line.finish();
  made.seconds = line.elapsed();
}

// SIGTERM or SIGINT stopped the run between batches (here, or on another rank that then failed the job):
// rank 0 writes the manifest of the images finished so far (its own, and complete PNGs the other ranks or an
// earlier run left), marked incomplete; no collective runs, as other ranks may be gone. The error says how far
// the run got and how to finish it.
void GenerateRun::stopped(const RankOutput& made) const {
  const int sig = stop_signal();
  const std::set<int64_t> todo(r_.setup.base.seeds.begin(), r_.setup.base.seeds.end());
  auto done = static_cast<int64_t>(seeds_.size() - todo.size() + made.records.size());
  if (ranks_.root() && !o_.out.empty()) {
    std::map<int64_t, nlohmann::json> mine;
    for (const auto& rec : made.records) mine[rec["seed"].get<int64_t>()] = rec;
    RunOutput finished;
    for (int64_t s : seeds_) {
      if (mine.count(s)) {
        finished.records.push_back(mine.at(s));
      } else if (png_is_complete(paths_.at(s))) {
        nlohmann::json rec = {{"seed", s}, {"file", fs::relative(paths_.at(s), o_.out).string()}};
        if (!todo.count(s)) rec["resumed"] = true;
        finished.records.push_back(rec);
      }
    }
    finished.main_evals = made.done.main_evals, finished.guide_evals = made.done.guide_evals;
    done = static_cast<int64_t>(finished.records.size());
    nlohmann::json m = manifest(finished, made.seconds);
    m["complete"] = false;
    m["interrupted"] = {{"signal", signal_name(sig)}, {"images_done", done}, {"images_total", seeds_.size()}};
    write_file_atomic((fs::path(o_.out) / "manifest.json").string(), m.dump(2) + "\n");
  }
  throw Interrupted(sig, "interrupted by " + signal_name(sig) + " at image " + std::to_string(done) + "/" +
                             std::to_string(seeds_.size()) + "; rerun the same command" +
                             (o_.out.empty() ? "" : " with --resume to finish"));
}

RunOutput GenerateRun::collect(const RankOutput& made) const {
  RunOutput c;
  const ModelInfo& info = n_.nets.main->info();
  const auto total = static_cast<int64_t>(r_.setup.base.seeds.size());
  if (!o_.grid.empty()) c.pixels = in_order(ranks_, made.pixels, made.positions, total, n_.decoder->image_shape());
  if (!o_.npy.empty()) {
    std::vector<torch::Tensor> samples = made.samples;
    if (samples.empty())  // this rank made none: an empty float32 part
      samples.push_back(torch::empty({0, info.img_channels, info.img_resolution, info.img_resolution}));
    c.samples = in_order(ranks_, samples, made.positions, total, {info.img_channels, info.img_resolution, info.img_resolution});
  }
  nlohmann::json mine = ranks_.times();
  mine["images"] = made.records.size();
  mine["batches"] = made.batches;
  mine["seconds"] = made.seconds;
  mine["network_evaluations"] = {{"main", made.done.main_evals}, {"guide", made.done.guide_evals}};
  mine["records"] = made.records;
  std::vector<nlohmann::json> entries;
  for (auto& e : ranks_.gather_json(mine)) {
    for (auto& rec : e["records"]) c.records.push_back(rec);
    c.main_evals += e["network_evaluations"]["main"].get<int64_t>();
    c.guide_evals += e["network_evaluations"]["guide"].get<int64_t>();
    e.erase("records");
    entries.push_back(e);
  }
  c.ranks = ranks_.describe(entries);
  return c;
}

nlohmann::json GenerateRun::manifest(const RunOutput& all, double seconds) const {
  nlohmann::json m = params_;
  m["seeds"] = o_.seeds;
  m["class_idx"] = o_.class_idx >= 0 ? nlohmann::json(o_.class_idx) : nlohmann::json();
  m["batch"] = o_.batch;
  m["device"] = r_.setup.device.str();
  const Nets& nets = n_.nets;
  for (const auto& [role, net] : {std::pair{"net", nets.main}, {"gnet", nets.guide}, {"uncond", nets.uncond}})
    if (net) {
      m[std::string(role) + "_file"] = net->path(), m[std::string(role) + "_sha256_full"] = net->file_sha256();
      if (net->posthoc_ema()) m[std::string(role) + "_ema_coefficients"] = net->posthoc_ema()->coefficients;
    }
  if (n_.decoder && n_.decoder->vae()) {
    m["vae_file"] = n_.decoder->vae()->path(), m["vae_sha256_full"] = n_.decoder->vae()->file_sha256();
    m["vae_batch"] = n_.decoder->vae_batch();
    m["vae_decode_seconds"] = n_.decoder->vae_seconds();
  }
  m["images"] = all.records;
  m["complete"] = true;  // false in the manifest of a run stopped by a signal
  m["seconds"] = seconds;
  m["network_evaluations"] = {{"main", all.main_evals}, {"guide", all.guide_evals}};
  if (!all.ranks.is_null()) m["ranks"] = all.ranks;
  return m;
}

// The records of the seeds kept from an earlier run (--resume) joined with those made, in seed order.
std::vector<nlohmann::json> GenerateRun::all_records(std::vector<nlohmann::json> made) const {
  std::map<int64_t, nlohmann::json> by_seed;
  for (auto& rec : made) {
    const auto seed = rec["seed"].get<int64_t>();
    by_seed[seed] = std::move(rec);
  }
  std::vector<nlohmann::json> records;
  for (int64_t s : seeds_) {
    auto it = by_seed.find(s);
    records.push_back(it != by_seed.end() ? it->second
                                          : nlohmann::json{{"seed", s},
                                                           {"file", fs::relative(paths_.at(s), o_.out).string()},
                                                           {"resumed", true}});
  }
  return records;
}

// The grid's images in seed order: made now, or read back where kept from an earlier run.
torch::Tensor GenerateRun::grid_images(const torch::Tensor& made) const {
  const std::vector<int64_t>& made_seeds = r_.setup.base.seeds;
  std::map<int64_t, torch::Tensor> by_seed;
  for (size_t i = 0; i < made_seeds.size(); ++i) by_seed[made_seeds[i]] = made[static_cast<int64_t>(i)];
  std::vector<torch::Tensor> ordered;
  for (int64_t s : seeds_) ordered.push_back(by_seed.count(s) ? by_seed.at(s) : read_png(paths_.at(s)));
  return torch::stack(ordered);
}

void GenerateRun::write_collected(const RunOutput& all, double seconds) const {
  if (!o_.npy.empty()) write_npy(o_.npy, all.samples);
  if (!o_.grid.empty())
    write_png(o_.grid, make_grid(grid_images(all.pixels), o_.grid_cols), {{"parameters", params_.dump()}});
  if (!o_.out.empty())
    write_file_atomic((fs::path(o_.out) / "manifest.json").string(), manifest(all, seconds).dump(2) + "\n");
}

void GenerateRun::summarise(const RunOutput& all, double secs) const {
  const auto made_now = static_cast<int64_t>(r_.setup.base.seeds.size());
  const auto kept = static_cast<int64_t>(seeds_.size()) - made_now;
  const int world = ranks_.launch.world;
  std::cerr << "autoguide: " << made_now << " images (" << to_string(n_.mode) << ", w=" << format_number(r_.setup.base.guidance)
            << ") in " << secs << " s, " << (secs > 0 ? made_now / secs : 0.0) << " images/s"
            << (world > 1 ? " on " + std::to_string(world) + " ranks" : "")
            << (kept ? ", " + std::to_string(kept) + " kept from an earlier run" : "")
            << "; batched network evaluations: main " << all.main_evals << ", guides " << all.guide_evals;
  if (!o_.out.empty()) std::cerr << "; wrote " << o_.out;
  if (!o_.grid.empty()) std::cerr << "; grid " << o_.grid;
  if (!o_.npy.empty()) std::cerr << "; npy " << o_.npy;
  if (n_.decoder && n_.decoder->vae()) std::cerr << "; VAE decode " << n_.decoder->vae_seconds() << " s";
  std::cerr << "\n";
}

}  // namespace

void add_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", subcommand_help("generate"));
  static Params o;
  o.seeds = "16-19";  // EDM2's default
  o.grid_cols = 0;    // near square
  add_options(*cmd, o);
  cmd->footer(
      "Examples:\n"
      "  autoguide generate --net main.pt --gnet guide.pt --guidance 2.1 --seeds 0-63 --out out/ag\n"
      "  autoguide generate --preset edm2-img512-s-autog-fid --seeds 0-7 --grid grid.png\n"
      "  autoguide generate --net main.pt --uncond uncond.pt --guidance 1.4 --seeds 0-7 --npy x.npy");
  cmd->callback([cmd] { run_as_rank(*cmd, o.dist_timeout, [](const Ranks& ranks) { GenerateRun(o, ranks).run(); }); });
}

}  // namespace autoguide::cli
