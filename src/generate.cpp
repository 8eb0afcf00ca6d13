#include "autoguide/generate.hpp"

#include "autoguide/error.hpp"
#include "autoguide/seeds.hpp"

namespace autoguide {

void validate(const GenerateRequest& req, const Denoiser& main, const Denoiser* guide) {
  validate(req.sampler);
  validate_weight(req.guidance, "--guidance");
  if (req.seeds.empty()) throw UsageError("no seeds given; use e.g. --seeds 0-63");
  if (req.max_batch < 1) throw UsageError("--batch must be at least 1");
  if (req.guidance != 1 && guide == nullptr)
    throw UsageError("--guidance " + std::to_string(req.guidance) + " needs a guiding net: add --gnet GUIDE.pt");
  const int label_dim = main.info().label_dim;
  if (req.class_idx >= 0 && label_dim == 0)
    throw UsageError("--class was given but the main net is unconditional; drop --class");
  if (req.class_idx >= label_dim && label_dim > 0)
    throw UsageError("--class " + std::to_string(req.class_idx) + " is out of range: the net has " +
                     std::to_string(label_dim) + " classes (0-" + std::to_string(label_dim - 1) + ")");
  if (guide != nullptr && req.guidance != 1) {
    check_compatible(main.info(), guide->info(), "guiding net");
    infer_mode(main.info(), &guide->info(), req.guidance);
  }
}

GenerateProgress generate(const Denoiser& main, const Denoiser* guide, const GenerateRequest& req,
                          const std::function<bool(const std::vector<int64_t>&)>& skip,
                          const std::function<void(const BatchResult&)>& sink,
                          const std::function<void(const GenerateProgress&)>& progress) {
  c10::InferenceMode guard;
  const auto& info = main.info();
  GenerateProgress state;
  state.images_total = static_cast<int64_t>(req.seeds.size());
  state.num_steps = req.sampler.schedule.num_steps;
  GuidedDenoiser guided(main, req.guidance == 1 ? nullptr : guide, req.guidance);

  for (const auto& batch : split_batches(req.seeds, req.max_batch)) {
    if (batch.empty()) continue;
    if (skip && skip(batch)) {
      state.images_done += static_cast<int64_t>(batch.size());
      continue;
    }
    SeedGenerators gens(batch, main.device());
    auto drawn = draw_noise_and_labels(gens, info.img_channels, info.img_resolution, info.label_dim, req.class_idx);
    auto denoise = [&](const torch::Tensor& x, const torch::Tensor& sigma) { return guided(x, sigma, drawn.labels); };
    auto randn_like = [&](const torch::Tensor& x) { return gens.randn_like(x); };
    auto observer = [&](int step, int) {
      state.step = step + 1;
      state.main_evals = guided.main_evals();
      state.guide_evals = guided.guide_evals();
      if (progress) progress(state);
    };
    BatchResult r;
    r.seeds = batch;
    r.classes = drawn.classes;
    r.samples = edm_sample(denoise, drawn.noise, req.sampler, randn_like, observer);
    state.images_done += static_cast<int64_t>(batch.size());
    sink(r);
  }
  state.main_evals = guided.main_evals();
  state.guide_evals = guided.guide_evals();
  return state;
}

}  // namespace autoguide
