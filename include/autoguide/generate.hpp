// The generation pipeline shared by the subcommands: seeds -> noise + labels -> guided sampling, batch by batch.
#pragma once
#include <torch/types.h>

#include <cmath>
#include <functional>
#include <vector>

#include "autoguide/guidance.hpp"
#include "autoguide/model.hpp"
#include "autoguide/decoder.hpp"
#include "autoguide/rank_split.hpp"
#include "autoguide/sampler.hpp"

namespace autoguide {

struct GenerateRequest {
  std::vector<int64_t> seeds;
  int class_idx = -1;  // -1: the class drawn from each seed
  int max_batch = 32;
  SamplerOptions sampler;
  double guidance = 1;
  double alpha = std::nan("");  // CFG + autoguidance mix (needs an unconditional net); NaN = off
  GuidanceInterval interval;
  Shard shard;  // under a launcher: this rank's batches of EDM2's rank split (rank_split.hpp)
};

struct BatchResult {
  std::vector<int64_t> seeds;
  int64_t first = 0;      // the position of seeds[0] in the request's seed list
  torch::Tensor classes;  // int64 [N] (undefined for unconditional nets)
  torch::Tensor samples;  // float32 [N,C,R,R] on the sampling device
};

struct GenerateProgress {
  int64_t images_done = 0, images_total = 0;  // of this rank's share; done: finished before the running batch
  int64_t batch_images = 0;                   // the size of that batch (EDM2's split, not the maximum)
  int step = 0, num_steps = 0;                // steps of that batch done so far
  int64_t main_evals = 0, guide_evals = 0;

  // The share of the run's images done, counting the running batch by its steps: never decreases during a
  // run, and is exactly 1 after the last step.
  double fraction() const;
};

// The nets of a run: the main one, a guide (autoguidance, or CFG when unconditional) and, for the
// CFG + autoguidance mix, an unconditional net.
struct Nets {
  const Denoiser* main = nullptr;
  const Denoiser* guide = nullptr;
  const Denoiser* uncond = nullptr;
};

// The smallest batch, and the checks of the fields that need no net (each throws FieldError).
inline constexpr int kMinBatch = 1;
void check_max_batch(int max_batch);
void check_alpha(double alpha);  // NaN (off) or in [0, 1]

// Checks the request against the nets (class index, nets present and compatible); throws FieldError.
void validate(const GenerateRequest& req, const Nets& nets);

// The mode the request runs in (recorded in every output).
GuidanceMode run_mode(const GenerateRequest& req, const Nets& nets);

// Runs the shard's batches of EDM2's split in seed order; `sink` receives each finished batch; `progress` is
// told after every sampler step.
using ProgressFn = std::function<void(const GenerateProgress&)>;
GenerateProgress generate(const Nets& nets, const GenerateRequest& req,
                          const std::function<void(const BatchResult&)>& sink, const ProgressFn& progress = nullptr);

// Each finished batch with its pixels (uint8 [N,C,H,W] on the CPU; undefined without a decoder).
using PixelSink = std::function<void(const BatchResult& batch, const torch::Tensor& pixels)>;

// generate(), each batch decoded to pixels by `decoder` (null: samples only, e.g. latents for --npy).
GenerateProgress generate_images(const Nets& nets, const GenerateRequest& req, PixelDecoder* decoder,
                                 const PixelSink& sink, const ProgressFn& progress = nullptr);

}  // namespace autoguide
