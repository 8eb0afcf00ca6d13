// `autoguide generate`: EDM2's generate_images.py, with autoguidance or CFG, PNG/grid/npy outputs.
#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <thread>

#include "autoguide/atomic_file.hpp"
#include "autoguide/decoder.hpp"
#include "autoguide/error.hpp"
#include "autoguide/generate.hpp"
#include "autoguide/grid.hpp"
#include "autoguide/image_output.hpp"
#include "autoguide/npy.hpp"
#include "autoguide/png.hpp"
#include "autoguide/preset.hpp"
#include "autoguide/seeds.hpp"
#include "commands.hpp"
#include "device.hpp"
#include "progress.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

namespace {

struct Options {
  std::string preset, net, gnet, uncond, outdir, npy, grid, models, device = "auto";
  std::string sampler_name = "heun", interval_sigma, interval_steps, dtype = "auto";
  std::string vae, vae_dtype = "fp32";
  int vae_batch = 4;  // EDM2's encoder_batch_size
  double alpha = std::nan("");
  bool subdirs = false, resume = false, overwrite = false, quiet = false;
  std::string seeds = "16-19";
  int class_idx = -1, batch = 32, grid_cols = 0, threads = 0;
  double guidance = 1;
  SamplerOptions sampler;
  CLI::Option *net_opt = nullptr, *gnet_opt = nullptr, *guidance_opt = nullptr, *vae_opt = nullptr;
};

nlohmann::json run_parameters(const Options& o, const GenerateRequest& req, const Nets& nets, GuidanceMode mode,
                              const VaeDecoder* vae) {
  nlohmann::json j = sample_parameters(req, nets, mode, o.dtype);
  if (vae) {
    j["vae"] = fs::path(vae->path()).filename().string();
    j["vae_sha256"] = vae->file_sha256().substr(0, 12);  // the prefix length of the nets' hashes
    j["vae_dtype"] = to_string(vae->precision());
  }
  if (!o.preset.empty()) j["preset"] = o.preset;
  return j;
}

void apply_preset(Options& o) {
  if (o.preset.empty()) return;
  Preset p = find_preset(o.preset);
  const std::string dir = models_dir(o.models);
  std::string missing;  // each missing file with the command that makes it
  auto resolve = [&](const std::string& file, bool is_vae) {
    std::string path = (fs::path(dir) / file).string();
    if (!file_exists(path)) {
      const std::string source = is_vae ? "diffusion_pytorch_model.safetensors"
                                        : fs::path(file).replace_extension(".pkl").string();
      missing += std::string(missing.empty() ? "" : ", ") + path + " (scripts/" +
                 (is_vae ? "export_vae.py " : "export_edm2.py ") + source + " " + path + ")";
    }
    return path;
  };
  if (o.net_opt->count() == 0) o.net = resolve(p.net, false);
  if (o.guidance_opt->count() == 0) o.guidance = p.guidance;
  if (o.gnet_opt->count() == 0 && !p.gnet.empty() && o.guidance != 1) o.gnet = resolve(p.gnet, false);
  const bool writes_images = !o.outdir.empty() || !o.grid.empty();  // latents alone need no VAE
  if (o.vae_opt->count() == 0 && !p.vae.empty() && writes_images) o.vae = resolve(p.vae, true);
  if (!missing.empty())
    throw UsageError("preset " + p.name + " needs " + missing + "; or download and convert everything with " +
                     "scripts/get_edm2.sh " + p.name + " (files are looked up in --models DIR)");
}

void run(Options& o) {
  apply_preset(o);
  if (o.net.empty()) throw UsageError("no main net: give --net MODEL.pt or --preset NAME");
  if (o.outdir.empty() && o.npy.empty() && o.grid.empty())
    throw UsageError("nothing to write: give --outdir DIR, --grid FILE or --npy FILE");
  GenerateRequest req;
  req.seeds = parse_seed_list(o.seeds);
  req.class_idx = o.class_idx;
  req.max_batch = o.batch;
  req.sampler = o.sampler;
  set_sampling(req, o.sampler_name, o.interval_sigma, o.interval_steps);
  req.guidance = o.guidance;
  req.alpha = o.alpha;
  validate_weight(req.guidance, "--guidance");
  if (!std::isnan(req.alpha) && o.uncond.empty())
    throw UsageError("--alpha mixes CFG into autoguidance and needs an unconditional net: add --uncond U.pt");
  if (req.guidance != 1 && o.gnet.empty())
    throw UsageError("--guidance " + std::to_string(req.guidance) + " needs a guiding net: add --gnet GUIDE.pt");

  const torch::Device device = select_device(o.device, o.threads);
  const NetPrecision precision = parse_precision(o.dtype, device);
  Denoiser net = Denoiser::load(o.net, device, precision);
  std::optional<Denoiser> gnet, unet;
  if (req.guidance != 1) gnet.emplace(Denoiser::load(o.gnet, device, precision));
  if (req.guidance != 1 && !o.uncond.empty()) unet.emplace(Denoiser::load(o.uncond, device, precision));
  Nets nets{&net, gnet ? &*gnet : nullptr, unet ? &*unet : nullptr};
  if (req.guidance == 1 && !o.uncond.empty() && std::isnan(req.alpha))
    throw UsageError("--uncond is used with --alpha; for plain CFG pass the unconditional net as --gnet");
  validate(req, nets);
  const Denoiser* guide = nets.guide;
  const GuidanceMode mode = run_mode(req, nets);
  const auto& info = net.info();
  const bool writes_images = !o.outdir.empty() || !o.grid.empty();
  const bool latent = info.encoder.type == "vae";
  if (!o.vae.empty() && !latent)
    throw UsageError("--vae decodes latents, but " + o.net + " makes pixels (encoder " + info.encoder.type + "); drop --vae");
  if (writes_images && latent && o.vae.empty())
    throw UsageError(o.net + " makes SD-VAE latents; to write images give --vae VAE.pt (convert "
                     "stabilityai/sd-vae-ft-mse with scripts/export_vae.py diffusion_pytorch_model.safetensors "
                     "VAE.pt), or use only --npy FILE to save the latents");
  if (o.vae_batch < 1) throw UsageError("--vae-batch must be at least 1");
  std::optional<VaeDecoder> vae;
  if (writes_images && latent) {
    vae.emplace(VaeDecoder::load(o.vae, device, parse_precision(o.vae_dtype, device, "--vae-dtype")));
    check_vae_compatible(*vae, info, o.net);
  }
  if (writes_images && !latent && info.img_channels != 1 && info.img_channels != 3)
    throw UsageError(o.net + " outputs " + std::to_string(info.img_channels) +
                     " channels, which are not an image; use --npy FILE to save the raw samples");
  if (guide && guide->loaded_param_count() > net.loaded_param_count() && !o.quiet)
    std::cerr << "autoguide: warning: the guiding net has more parameters (" << human_count(guide->loaded_param_count())
              << ") than the main net (" << human_count(net.loaded_param_count())
              << "); guidance works best with a weaker guide\n";

  // Refuse to replace earlier results unless asked: nothing a user already generated is lost.
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

  const nlohmann::json params = run_parameters(o, req, nets, mode, vae ? &*vae : nullptr);
  std::map<int64_t, torch::Tensor> images;  // for the grid, in seed order
  std::vector<torch::Tensor> raw;           // for --npy
  std::vector<nlohmann::json> records;
  int64_t skipped = 0;
  double decode_seconds = 0;

  auto skip = [&](const std::vector<int64_t>& batch) {
    if (!o.resume || o.outdir.empty() || !o.npy.empty()) return false;
    for (int64_t s : batch)
      if (!png_is_complete(paths[s])) return false;
    for (int64_t s : batch) {
      if (!o.grid.empty()) images[s] = read_png(paths[s]);
      records.push_back({{"seed", s}, {"file", fs::relative(paths[s], o.outdir).string()}, {"resumed", true}});
    }
    skipped += static_cast<int64_t>(batch.size());
    return true;
  };
  auto sink = [&](const BatchResult& r) {
    if (!o.npy.empty()) raw.push_back(r.samples.to(torch::kCPU));
    torch::Tensor pixels;
    if (vae) {
      const auto start = std::chrono::steady_clock::now();
      pixels = decode_latents(*vae, r.samples, info.encoder.scale, info.encoder.bias, o.vae_batch);
      decode_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    } else if (writes_images) {
      pixels = decode_rgb(r.samples);
    }
    for (size_t k = 0; k < r.seeds.size(); ++k) {
      const int64_t seed = r.seeds[k];
      nlohmann::json rec = {{"seed", seed}};
      if (r.classes.defined()) rec["class"] = r.classes[static_cast<int64_t>(k)].item<int64_t>();
      if (!o.grid.empty()) images[seed] = pixels[static_cast<int64_t>(k)];
      if (!o.outdir.empty()) {
        write_sample_png(paths[seed], pixels[static_cast<int64_t>(k)], params, seed,
                         rec.contains("class") ? rec["class"] : nlohmann::json());
        rec["file"] = fs::relative(paths[seed], o.outdir).string();
      }
      records.push_back(rec);
    }
  };

  ProgressLine line(!o.quiet);
  auto progress = [&](const GenerateProgress& p) {
    const double frac = (p.images_done + double(p.step) / p.num_steps * std::min<int64_t>(o.batch, p.images_total - p.images_done)) /
                        std::max<int64_t>(p.images_total, 1);
    line.update(frac, "image " + std::to_string(p.images_done) + "/" + std::to_string(p.images_total) + "  step " +
                          std::to_string(p.step) + "/" + std::to_string(p.num_steps));
  };
  const GenerateProgress done = generate(nets, req, skip, sink, progress);
  line.finish();
  const double secs = line.elapsed();

  if (!o.npy.empty()) {
    torch::Tensor all = raw.empty() ? torch::empty({0, info.img_channels, info.img_resolution, info.img_resolution})
                                    : torch::cat(raw);
    write_npy(o.npy, all);
  }
  if (!o.grid.empty()) {
    std::vector<torch::Tensor> ordered;
    for (int64_t s : req.seeds) ordered.push_back(images.at(s));
    write_png(o.grid, make_grid(torch::stack(ordered), o.grid_cols), {{"parameters", params.dump()}});
  }
  if (!o.outdir.empty()) {
    nlohmann::json manifest = params;
    manifest["seeds"] = o.seeds;
    manifest["class_idx"] = o.class_idx >= 0 ? nlohmann::json(o.class_idx) : nlohmann::json();
    manifest["batch"] = o.batch;
    manifest["device"] = device.str();
    manifest["net_file"] = net.path();
    manifest["net_sha256_full"] = net.file_sha256();
    if (guide) manifest["gnet_file"] = guide->path(), manifest["gnet_sha256_full"] = guide->file_sha256();
    if (nets.uncond) manifest["uncond_file"] = nets.uncond->path(), manifest["uncond_sha256_full"] = nets.uncond->file_sha256();
    if (vae) {
      manifest["vae_file"] = vae->path(), manifest["vae_sha256_full"] = vae->file_sha256();
      manifest["vae_batch"] = o.vae_batch;
      manifest["vae_decode_seconds"] = decode_seconds;
    }
    manifest["images"] = records;
    manifest["seconds"] = secs;
    manifest["network_evaluations"] = {{"main", done.main_evals}, {"guide", done.guide_evals}};
    write_file_atomic((fs::path(o.outdir) / "manifest.json").string(), manifest.dump(2) + "\n");
  }
  if (!o.quiet) {
    const int64_t made = static_cast<int64_t>(req.seeds.size()) - skipped;
    std::cerr << "autoguide: " << made << " images (" << to_string(mode) << ", w=" << req.guidance << ") in "
              << secs << " s, " << (secs > 0 ? made / secs : 0.0) << " images/s"
              << (skipped ? ", " + std::to_string(skipped) + " kept from an earlier run" : "")
              << "; batched network evaluations: main " << done.main_evals << ", guides " << done.guide_evals;
    if (!o.outdir.empty()) std::cerr << "; wrote " << o.outdir;
    if (!o.grid.empty()) std::cerr << "; grid " << o.grid;
    if (!o.npy.empty()) std::cerr << "; npy " << o.npy;
    if (vae) std::cerr << "; VAE decode " << decode_seconds << " s";
    std::cerr << "\n";
  }
}

}  // namespace

void add_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate images (EDM2 generate_images.py, plus autoguidance)");
  static Options o;
  auto& s = o.sampler;
  cmd->add_option("--preset", o.preset, "Configuration preset (autoguide presets lists them)");
  o.net_opt = cmd->add_option("--net", o.net, "Main network (.pt from scripts/export_edm2.py)");
  o.gnet_opt = cmd->add_option("--gnet", o.gnet, "Guiding network: a weaker net (autoguidance) or an unconditional one (CFG)");
  o.guidance_opt = cmd->add_option("--guidance", o.guidance, "Guidance weight w; 1 = no guidance");
  cmd->add_option("--uncond", o.uncond, "Unconditional net for the CFG + autoguidance mix (with --alpha)");
  cmd->add_option("--alpha", o.alpha, "Share of autoguidance in the mix: 1 = pure autoguidance, 0 = pure CFG");
  cmd->add_option("--interval-sigma,--interval_sigma", o.interval_sigma, "Guide only where sigma_i is in (LO,HI], e.g. 0.28,2.9");
  cmd->add_option("--interval-steps,--interval_steps", o.interval_steps, "Guide only on steps A..B (inclusive), e.g. 17,22");
  cmd->add_option("--sampler", o.sampler_name, "heun (EDM2's), euler or dpmpp2m")->capture_default_str();
  cmd->add_option("--dtype", o.dtype, "Network precision: auto (fp16 on CUDA, fp32 on CPU, as EDM2), fp32, fp16, bf16")->capture_default_str();
  o.vae_opt = cmd->add_option("--vae", o.vae, "VAE decoder for latent models (.pt from scripts/export_vae.py)");
  cmd->add_option("--vae-batch,--vae_batch", o.vae_batch, "Images per VAE decode call (EDM2's encoder batch)")->capture_default_str();
  cmd->add_option("--vae-dtype,--vae_dtype", o.vae_dtype, "VAE precision: fp32 (EDM2's), bf16, fp16")->capture_default_str();
  cmd->add_option("--outdir", o.outdir, "Folder for the PNGs (EDM2 layout: 000016.png ...)");
  cmd->add_flag("--subdirs", o.subdirs, "One subfolder per 1000 seeds");
  cmd->add_option("--seeds", o.seeds, "Seeds, e.g. 0-63 or 1,2,5-10")->capture_default_str();
  cmd->add_option("--class", o.class_idx, "Class label (default: drawn from each seed)");
  cmd->add_option("--batch", o.batch, "Maximum batch size")->capture_default_str();
  cmd->add_option("--steps", s.schedule.num_steps, "Number of sampling steps")->capture_default_str();
  cmd->add_option("--sigma_min,--sigma-min", s.schedule.sigma_min, "Lowest noise level")->capture_default_str();
  cmd->add_option("--sigma_max,--sigma-max", s.schedule.sigma_max, "Highest noise level")->capture_default_str();
  cmd->add_option("--rho", s.schedule.rho, "Time step exponent")->capture_default_str();
  cmd->add_option("--S_churn,--S-churn,--s-churn", s.S_churn, "Stochasticity strength")->capture_default_str();
  cmd->add_option("--S_min,--S-min,--s-min", s.S_min, "Stochasticity min noise level")->capture_default_str();
  cmd->add_option("--S_max,--S-max,--s-max", s.S_max, "Stochasticity max noise level")->capture_default_str();
  cmd->add_option("--S_noise,--S-noise,--s-noise", s.S_noise, "Stochasticity noise inflation")->capture_default_str();
  cmd->add_option("--grid", o.grid, "Also write all images as one grid PNG");
  cmd->add_option("--grid-cols,--grid_cols", o.grid_cols, "Grid columns (default: near square)");
  cmd->add_option("--npy", o.npy, "Write the raw float32 samples [N,C,H,W] in seed order");
  cmd->add_flag("--resume", o.resume, "Keep complete images from an earlier run and generate the rest");
  cmd->add_flag("--overwrite", o.overwrite, "Replace existing output files");
  cmd->add_option("--models", o.models, "Folder of converted models for --preset (default $AUTOGUIDE_MODELS or ./models)");
  add_device_options(*cmd, o.device, o.threads);
  cmd->add_flag("--quiet,-q", o.quiet, "No progress or summary on stderr");
  cmd->callback([] { run(o); });
}

}  // namespace autoguide::cli
