// The autoguide.json inside a model or VAE file: written by our exporters, but the file comes from anywhere.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "autoguide/decoder.hpp"
#include "autoguide/error.hpp"
#include "autoguide/model.hpp"
#include "fuzz_target.hpp"

namespace {

void model(const std::string& text) {
  try {
    const auto m = autoguide::parse_model_info(text, "fuzz.pt");
    if (m.img_resolution <= 0 || m.img_channels <= 0 || m.label_dim < 0 || !(m.sigma_data > 0)) __builtin_trap();
    if (m.encoder.type != "rgb" && m.encoder.type != "vae") __builtin_trap();
    for (float s : m.encoder.scale)
      if (!std::isfinite(s) || s == 0) __builtin_trap();
    (void)m.raw.dump(2);  // `autoguide info --json` prints it
  } catch (const autoguide::UsageError&) {
  }
}

void vae(const std::string& text) {
  try {
    const auto v = autoguide::parse_vae_info(text, "fuzz-vae.pt");
    if (v.latent_channels <= 0 || v.scale_factor <= 0 || v.out_channels <= 0) __builtin_trap();
  } catch (const autoguide::UsageError&) {
  }
}

}  // namespace

static int fuzz_model_metadata(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  model(text);
  vae(text);
  return 0;
}

const bool model_metadata_registered = register_fuzz_target("model_metadata", fuzz_model_metadata);
