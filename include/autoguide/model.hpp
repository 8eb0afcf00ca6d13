// A loaded TorchScript denoiser D(x; sigma, c) and what its metadata says about it.
#pragma once
#include <torch/script.h>

#include <nlohmann/json.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace autoguide {

class FastUNet;  // the native U-Net of --fast (src/fast_unet.hpp, private)

// How network outputs become pixels (EDM2's StandardRGBEncoder or StabilityVAEEncoder).
struct EncoderInfo {
  std::string type = "rgb";  // "rgb" or "vae"
  std::vector<float> scale, bias;
  std::string vae_name;
};

struct ModelInfo {
  int format_version = 0;
  int img_resolution = 0;
  int img_channels = 0;
  int label_dim = 0;
  double sigma_data = 0.5;
  bool use_fp16 = false;
  std::string model_size;  // xxs..xxl, empty when non-standard
  int model_channels = 0;
  int64_t param_count = 0;
  std::optional<double> training_kimg;
  std::optional<double> ema_std;
  EncoderInfo encoder;
  std::string source_file, source_sha256;
  nlohmann::json raw;  // the whole autoguide.json, for `info --json`

  bool conditional() const { return label_dim > 0; }
};

// The metadata file name inside the TorchScript archive; its fields: docs/model_format.md.
inline constexpr const char* kMetadataName = "autoguide.json";
inline constexpr int kFormatVersion = 1;

// The precision the networks compute in. Auto is EDM2's choice: fp16 on CUDA (for nets exported with
// use_fp16), fp32 on CPU. The sampler state stays fp32 whatever this is.
enum class NetPrecision { Auto, FP32, FP16, BF16 };

// Refuses a precision the device cannot run (checked with a tiny convolution): FieldError naming `field`.
void check_precision_runs(NetPrecision p, const torch::Device& device, const std::string& field = "precision");
std::string to_string(NetPrecision p);

// The precision a net really computes in: Auto resolved as the exported network resolves it (fp16 on CUDA for
// nets exported with use_fp16, fp32 otherwise).
NetPrecision effective_precision(NetPrecision requested, const ModelInfo& info, const torch::Device& device);

ModelInfo parse_model_info(const std::string& json_text, const std::string& origin);

// How a net built from a snapshot set was averaged (phema.hpp): EDM2's post-hoc EMA at `std` after `nimg`
// training images, as coefficients of the set's snapshots (in the set's order), the profile fit's relative
// L2 residual, and whether the sums were stored in the snapshots' dtype ("stored") or kept in fp32.
struct PosthocEma {
  double std = 0;
  int64_t nimg = 0;
  double residual = 0;
  std::string precision = "stored";
  std::vector<double> coefficients;
};

class Denoiser {
 public:
  // Loads, validates metadata and prepares the effective weights on `device`. Throws UsageError for bad files.
  // `fast`: run the U-Net natively (fast_unet.hpp) instead of the exported forward; not bit-identical.
  static Denoiser load(const std::string& path, const torch::Device& device,
                       NetPrecision precision = NetPrecision::Auto, bool fast = false);

  // A net already loaded from `path` (a model file, or a snapshot set with `ema` saying how it was built):
  // sets the precision, prepares the effective weights once. Throws UsageError for modules that cannot.
  static Denoiser from_module(torch::jit::Module module, ModelInfo info, const std::string& path, std::string sha,
                              const torch::Device& device, NetPrecision precision, bool fast,
                              std::optional<PosthocEma> ema = std::nullopt);

  // A net described but without weights: what `from_module` would record (file, metadata, precision, EMA),
  // for a command that lays out its work before building each net (sweep's EMA lengths). Sampling with it
  // throws until weights are moved in (assigning a built Denoiser to it).
  static Denoiser unbuilt(ModelInfo info, const std::string& path, std::string sha, const torch::Device& device,
                          NetPrecision precision, bool fast, std::optional<PosthocEma> ema = std::nullopt);

  // Drops the weights (the module and the native U-Net), keeping the description, so that references to the
  // net stay valid for saying what it was; as unbuilt() afterwards.
  void release();
  bool built() const { return built_; }

  // D(x; sigma, labels): x [N,C,R,R] float32, sigma a 0-dim or [N] tensor, labels one-hot [N,label_dim]
  // or undefined for unconditional use.
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& sigma, const torch::Tensor& labels) const;

  const ModelInfo& info() const { return info_; }
  const std::string& path() const { return path_; }
  const std::string& file_sha256() const { return sha256_; }
  const torch::Device& device() const { return device_; }
  NetPrecision precision() const { return precision_; }  // never Auto
  bool fast() const { return fast_on_; }
  const std::optional<PosthocEma>& posthoc_ema() const { return ema_; }
  int64_t loaded_param_count() const;
  // SHA-256 of the weights it samples with (parameters and buffers, in order, as stored on the device) and of how
  // it runs them (precision, native U-Net): two nets with equal digests denoise alike, e.g. a snapshot set's EMA
  // length that is another file's net.
  std::string weights_sha256() const;

 private:
  Denoiser(torch::jit::Module m, ModelInfo info, std::string path, std::string sha, torch::Device device,
           NetPrecision precision)
      : module_(std::move(m)), info_(std::move(info)), path_(std::move(path)), sha256_(std::move(sha)),
        device_(device), precision_(precision) {}

  mutable torch::jit::Module module_;
  std::shared_ptr<const FastUNet> fast_;
  ModelInfo info_;
  std::string path_, sha256_;
  torch::Device device_;
  NetPrecision precision_;
  std::optional<PosthocEma> ema_;
  bool fast_on_ = false, built_ = true;
};

// Nets that sample together must agree on what x and sigma mean. Throws UsageError naming the mismatch.
void check_compatible(const ModelInfo& main, const ModelInfo& guide, const std::string& guide_role);

// Short human form of a size, e.g. "280.2M".
std::string human_count(int64_t n);

}  // namespace autoguide
