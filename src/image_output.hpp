// What every sampling command writes per image, so that generate, sweep and compare files look alike:
// EDM2's file names and the parameters each PNG carries.
#pragma once
#include <torch/types.h>

#include <nlohmann/json.hpp>
#include <string>

#include "autoguide/generate.hpp"
#include "autoguide/decoder.hpp"

namespace autoguide {

// EDM2's layout: OUTDIR/000016.png, or OUTDIR/000000/000016.png with subdirs (one folder per 1000 seeds).
std::string image_path(const std::string& outdir, int64_t seed, bool subdirs);

// The run's parameters (guidance, mode, sampler, schedule, churn, interval, the precision the nets really
// compute in, nets with SHA-256 prefixes, the VAE, tool version), as recorded in every PNG and manifest.
// How a net built from a snapshot set was averaged: {std, kimg, nimg, fit_residual, precision}; null for a model file.
nlohmann::json posthoc_ema_json(const Denoiser& net);

nlohmann::json sample_parameters(const GenerateRequest& req, const Nets& nets, GuidanceMode mode,
                                 const PixelDecoder* decoder);  // null: no images (samples only)

// Writes pixels uint8 [C,H,W] to `path` (creating its folder, atomically) with `params` plus the seed and class
// (null for unconditional nets) in the `parameters` tEXt chunk.
void write_sample_png(const std::string& path, const torch::Tensor& pixels, const nlohmann::json& params,
                      int64_t seed, const nlohmann::json& class_idx);

}  // namespace autoguide
