#include "autoguide/generate.hpp"

#include <algorithm>

#include "autoguide/error.hpp"
#include "autoguide/format.hpp"
#include "autoguide/seeds.hpp"
#include "autoguide/stop.hpp"

namespace autoguide {

void check_max_batch(int max_batch) {
  if (max_batch < kMinBatch)
    throw FieldError("max_batch", "max_batch must be at least " + std::to_string(kMinBatch) + " (got " +
                                      std::to_string(max_batch) + ")");
}

void check_alpha(double alpha) {
  if (!std::isnan(alpha) && !(alpha >= 0 && alpha <= 1))
    throw FieldError("alpha", "alpha must lie in [0, 1] (got " + format_number(alpha) + ")");
}

void validate(const GenerateRequest& req, const Nets& nets) {
  validate(req.sampler);
  validate_weight(req.guidance);
  check_alpha(req.alpha);
  req.interval.validate(req.sampler.schedule.num_steps);
  if (req.seeds.empty()) throw FieldError("seeds", "no seeds given; give seeds, e.g. 0-63");
  check_max_batch(req.max_batch);
  const auto& main = *nets.main;
  const bool mixing = !std::isnan(req.alpha);
  if (mixing && nets.uncond == nullptr)
    throw FieldError({"alpha", "nets.uncond"},
                     "alpha mixes CFG into autoguidance and needs an unconditional net: give nets.uncond");
  if (nets.uncond != nullptr && !mixing)
    throw FieldError({"nets.uncond", "alpha", "nets.guide"},
                     "nets.uncond is used with alpha; for plain CFG pass the unconditional net as nets.guide");
  if (req.guidance != 1 && nets.guide == nullptr)
    throw FieldError({"guidance", "nets.guide"},
                     "guidance " + format_number(req.guidance) + " needs a guiding net: give nets.guide");
  const int label_dim = main.info().label_dim;
  if (req.class_idx >= 0 && label_dim == 0)
    throw FieldError("class_idx", "class_idx was given but the main net is unconditional; leave class_idx unset");
  if (req.class_idx >= label_dim && label_dim > 0)
    throw FieldError("class_idx", "class_idx " + std::to_string(req.class_idx) + " is out of range: the net has " +
                                      std::to_string(label_dim) + " classes (0-" + std::to_string(label_dim - 1) + ")");
  if (nets.guide != nullptr && req.guidance != 1) {
    check_compatible(main.info(), nets.guide->info(), "guiding net");
    infer_mode(main.info(), &nets.guide->info(), req.guidance);
  }
  if (mixing) {
    check_compatible(main.info(), nets.uncond->info(), "unconditional net");
    if (nets.uncond->info().label_dim != 0 || label_dim == 0)
      throw FieldError("nets.uncond", "nets.uncond must be an unconditional net guiding a conditional main net");
    if (nets.guide->info().label_dim != label_dim)
      throw FieldError({"nets.guide", "alpha"},
                       "with alpha, nets.guide must be a conditional guide with the main net's classes (autoguidance)");
  }
}

GuidanceMode run_mode(const GenerateRequest& req, const Nets& nets) {
  if (req.guidance == 1) return GuidanceMode::None;
  if (!std::isnan(req.alpha)) return GuidanceMode::Mixed;
  return infer_mode(nets.main->info(), nets.guide ? &nets.guide->info() : nullptr, req.guidance);
}

double GenerateProgress::fraction() const {
  if (images_total <= 0) return 1;
  const double running = num_steps > 0 ? static_cast<double>(batch_images) * step / num_steps : 0;
  return std::min(1.0, (static_cast<double>(images_done) + running) / static_cast<double>(images_total));
}

GenerateProgress generate(const Nets& nets, const GenerateRequest& req,
                          const std::function<void(const BatchResult&)>& sink, const ProgressFn& progress) {
  c10::InferenceMode guard;
  const Denoiser& main = *nets.main;
  const auto& info = main.info();
  const auto batches = rank_batches(static_cast<int64_t>(req.seeds.size()), req.max_batch, req.shard);
  GenerateProgress state;
  for (const auto& b : batches) state.images_total += b.size();
  state.num_steps = req.sampler.schedule.num_steps;
  GuidedDenoiser guided(main, guide_terms(nets.guide, nets.uncond, req.guidance, req.alpha));
  const auto sigmas = karras_sigmas(req.sampler.schedule, torch::kCPU);

  for (const IndexRange& range : batches) {
    throw_if_stop_requested();  // SIGTERM / SIGINT: stop between batches, every finished one handed over
    const std::vector<int64_t> batch(req.seeds.begin() + range.begin, req.seeds.begin() + range.end);
    state.batch_images = range.size();
    state.step = 0;
    SeedGenerators gens(batch, main.device());
    auto drawn = draw_noise_and_labels(gens, info.img_channels, info.img_resolution, info.label_dim, req.class_idx);
    // The interval is decided once per step from sigma_i and holds for both of its evaluations.
    auto denoise = [&](const torch::Tensor& x, const torch::Tensor& sigma, int step) {
      return guided(x, sigma, drawn.labels, req.interval.contains(step, sigmas[step].item<float>()),
                    {step, req.sampler.schedule.num_steps});
    };
    auto randn_like = [&](const torch::Tensor& x) { return gens.randn_like(x); };
    auto observer = [&](int step, int) {
      state.step = step + 1;
      state.main_evals = guided.main_evals();
      state.guide_evals = guided.guide_evals();
      if (progress) progress(state);
    };
    BatchResult r;
    r.seeds = batch;
    r.first = range.begin;
    r.classes = drawn.classes;
    r.samples = edm_sample(denoise, drawn.noise, req.sampler, randn_like, observer);
    sink(r);
    state.images_done += static_cast<int64_t>(batch.size());
    state.batch_images = 0, state.step = 0;
  }
  state.main_evals = guided.main_evals();
  state.guide_evals = guided.guide_evals();
  return state;
}

GenerateProgress generate_images(const Nets& nets, const GenerateRequest& req, PixelDecoder* decoder,
                                 const PixelSink& sink, const ProgressFn& progress) {
  return generate(
      nets, req,
      [&](const BatchResult& r) { sink(r, decoder ? (*decoder)(r.samples) : torch::Tensor()); }, progress);
}

}  // namespace autoguide
