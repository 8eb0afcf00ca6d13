// The nets of a sampling command, each file loaded once on one device in one precision, and the pixel
// decoder of each main net (the VAE, when a latent net needs one, loaded once too).
#pragma once
#include <torch/types.h>

#include <map>
#include <optional>
#include <string>

#include "autoguide/decoder.hpp"
#include "autoguide/model.hpp"
#include "autoguide/phema.hpp"
#include "sampling_options.hpp"

namespace autoguide::cli {

// The requests of --net-ema / --gnet-ema `text` (one per std; none when empty), with --ema-precision.
std::vector<EmaRequest> ema_requests(const std::string& text, const std::string& flag, const std::string& precision);

// The one request of a flag that takes one length (generate, --net-ema), or none.
std::optional<EmaRequest> one_ema(const std::string& text, const std::string& flag, const std::string& precision);

class NetCache {
 public:
  // vae_path: --vae or a preset's VAE; empty when none. latent_hint: what else the command offers a latent
  // net without a VAE (appended to that error).
  NetCache(const SamplingSetup& setup, std::string vae_path, std::string latent_hint = "")
      : setup_(setup), vae_path_(std::move(vae_path)), latent_hint_(std::move(latent_hint)) {}

  // The net of a model file; or, with `ema`, the post-hoc EMA built from the snapshot set at `path` (each set
  // loaded once, each length built once and kept until release()). `ema_field` names the EMA length in
  // errors: a set given without one, or one given for a single net. A length that plan() described or
  // release() emptied is built in place: references to it stay valid and see the built net. For a set too
  // large to stay resident (--ema-memory), the pass that builds it also builds every other length plan()
  // described and get() has not built yet, so the file is read once for them all.
  const Denoiser& get(const std::string& path, const std::optional<EmaRequest>& ema = std::nullopt,
                      const std::string& ema_field = "ema");

  // What get(path, ema) will return, described (file, metadata, EMA plan) but, for a snapshot set's length
  // not built yet, without weights: a command lays out all its rows first and builds each length when its
  // rows run. A model file is loaded as by get().
  const Denoiser& plan(const std::string& path, const std::optional<EmaRequest>& ema = std::nullopt,
                       const std::string& ema_field = "ema");

  // Drops the weights of a snapshot set's length built by get() (nothing for a model file or a length not
  // built): the net stays described, so references to it stay valid for saying what it was, and get() builds
  // it again. Sweep calls it after a length's last row.
  void release(const std::string& path, const std::optional<EmaRequest>& ema);

  // Whether `path` is a snapshot set loaded so far and streamed (too large for --ema-memory): rebuilding one of
  // its lengths reads the file again.
  bool streamed(const std::string& path) const;

  // EDM2's RGB decoding, or the VAE for a latent net; refuses a latent net without a VAE and a VAE for a
  // pixel net.
  PixelDecoder& decoder(const Denoiser& main);

  const VaeDecoder* vae() const { return vae_ ? &*vae_ : nullptr; }

  // Each file loaded so far ("the file models/x.pt") with its SHA-256: what every rank must agree on.
  std::map<std::string, std::string> file_hashes() const;

 private:
  const SamplingSetup& setup_;
  std::string vae_path_, latent_hint_;
  const SnapshotSet& set_of(const std::string& path, const std::string& ema_field);
  Denoiser& entry(const std::string& path, const EmaRequest& ema, const std::string& ema_field);

  std::map<std::string, Denoiser> nets_;  // node-based: references stay valid as nets are added
  std::map<std::string, SnapshotSet> sets_;
  struct Length {
    std::string path;
    PosthocEma plan;
    bool was_built = false;  // built once (and perhaps released since)
  };
  std::map<std::string, Length> lengths_;  // by nets_' key: each length of a set described so far
  std::optional<VaeDecoder> vae_;
  std::map<const Denoiser*, PixelDecoder> decoders_;
};

}  // namespace autoguide::cli
