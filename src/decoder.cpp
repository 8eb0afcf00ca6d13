#include "autoguide/decoder.hpp"

#include <torch/csrc/jit/runtime/graph_executor.h>

#include <chrono>
#include <filesystem>

#include "autoguide/error.hpp"
#include "json_input.hpp"
#include "sha256.hpp"

namespace autoguide {

namespace {

const char* const kExportHint = "; export the VAE with scripts/export_vae.py diffusion_pytorch_model.safetensors VAE.pt";

int required_int(const nlohmann::json& j, const char* key, const std::string& origin) {
  if (!j.contains(key) || !is_int32(j[key]))
    throw UsageError(origin + ": VAE metadata lacks an integer '" + key + "'" + kExportHint);
  return j[key].get<int>();
}

torch::ScalarType scalar_type(NetPrecision p) {
  switch (p) {
    case NetPrecision::FP16: return torch::kFloat16;
    case NetPrecision::BF16: return torch::kBFloat16;
    default: return torch::kFloat32;
  }
}

}  // namespace

torch::Tensor decode_rgb(const torch::Tensor& x) {
  return (x.to(torch::kFloat32) * 127.5 + 128).clip(0, 255).to(torch::kUInt8).to(torch::kCPU);
}

VaeInfo parse_vae_info(const std::string& json_text, const std::string& origin) {
  const nlohmann::json j = parse_json_input(json_text, origin + ": metadata", kExportHint);
  if (!j.is_object()) throw UsageError(origin + ": metadata is not a JSON object" + std::string(kExportHint));
  // A denoiser in the --vae slot is the likely mistake; say so rather than list missing fields.
  if (!j.contains("kind") || j["kind"] != "vae")
    throw UsageError(origin + " is not a VAE decoder (its metadata kind is " +
                     (j.contains("kind") ? j["kind"].dump() : std::string("missing")) + ")" + kExportHint);
  VaeInfo v;
  v.raw = j;
  v.format_version = required_int(j, "format_version", origin);
  if (v.format_version != kFormatVersion)
    throw UsageError(origin + ": VAE metadata format version " + std::to_string(v.format_version) +
                     " is not supported (expected " + std::to_string(kFormatVersion) + ")" + kExportHint);
  v.latent_channels = required_int(j, "latent_channels", origin);
  v.scale_factor = required_int(j, "scale_factor", origin);
  if (j.contains("out_channels")) v.out_channels = required_int(j, "out_channels", origin);
  if (v.latent_channels <= 0 || v.scale_factor <= 0 || v.out_channels <= 0)
    throw UsageError(origin + ": VAE metadata has impossible shapes" + std::string(kExportHint));
  if (j.contains("source_file") && j["source_file"].is_string()) v.source_file = j["source_file"];
  if (j.contains("source_sha256") && j["source_sha256"].is_string()) v.source_sha256 = j["source_sha256"];
  return v;
}

VaeDecoder VaeDecoder::load(const std::string& path, const torch::Device& device, NetPrecision precision) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw UsageError("VAE file '" + path + "' not found" + kExportHint);
  torch::jit::setGraphExecutorOptimize(false);  // eager numerics, as for the denoisers (model.cpp)
  torch::jit::ExtraFilesMap extra{{kMetadataName, ""}};
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, device, extra);
  } catch (const std::exception&) {
    throw UsageError("'" + path + "' is not a readable TorchScript file (corrupt or truncated?)" + kExportHint);
  }
  if (extra[kMetadataName].empty())
    throw UsageError("'" + path + "' carries no " + std::string(kMetadataName) + " metadata" + kExportHint);
  VaeInfo info = parse_vae_info(extra[kMetadataName], path);
  module.eval();
  if (precision == NetPrecision::Auto) precision = NetPrecision::FP32;
  if (precision != NetPrecision::FP32) {
    module.to(scalar_type(precision));
    // Whether every op of the decoder has a kernel in this precision on this device shows only by running it.
    try {
      c10::InferenceMode guard;
      module.forward({torch::zeros({1, info.latent_channels, 1, 1}, torch::TensorOptions().device(device))});
    } catch (const std::exception&) {
      throw FieldError("vae_precision", "vae_precision " + to_string(precision) + " is not supported on " +
                                            device.str() + "; set vae_precision fp32" + (device.is_cpu() ? " or bf16" : ""));
    }
  }
  return VaeDecoder(std::move(module), std::move(info), path, sha256_file(path), device, precision);
}

torch::Tensor VaeDecoder::operator()(const torch::Tensor& z) const {
  c10::InferenceMode guard;
  torch::Tensor x = module_.forward({z.to(device_, torch::kFloat32)}).toTensor();
  const auto expected = std::vector<int64_t>{z.size(0), info_.out_channels, z.size(2) * info_.scale_factor,
                                             z.size(3) * info_.scale_factor};
  if (x.sizes() != c10::IntArrayRef(expected))
    throw UsageError(path_ + " returned images of shape " + c10::str(x.sizes()) + " instead of " +
                     c10::str(c10::IntArrayRef(expected)) + "; its metadata does not match its network" + kExportHint);
  // NaN would reach the uint8 pixels as arbitrary values; refuse before any image is written.
  if (!torch::isfinite(x).all().item<bool>())
    throw FieldFailure({"vae_precision"}, "the VAE decoder (" + path_ + ") produced NaN or Inf: its weights are " +
                                              "damaged or overflow in this precision; re-export it or set " +
                                              "vae_precision fp32 (nothing was written for this batch)");
  return x.to(torch::kFloat32);
}

void check_vae_compatible(const VaeDecoder& vae, const ModelInfo& net, const std::string& net_name) {
  if (vae.info().latent_channels != net.img_channels)
    throw UsageError(vae.path() + " decodes " + std::to_string(vae.info().latent_channels) + "-channel latents but " +
                     net_name + " makes " + std::to_string(net.img_channels) + " channels");
  if (vae.info().out_channels != 3 && vae.info().out_channels != 1)
    throw UsageError(vae.path() + " makes " + std::to_string(vae.info().out_channels) +
                     "-channel outputs, which are not an image");
  if (net.encoder.scale.size() != static_cast<size_t>(net.img_channels) ||
      net.encoder.bias.size() != static_cast<size_t>(net.img_channels))
    throw UsageError(net_name + ": its VAE encoder metadata lacks a scale and bias per channel; re-export it "
                     "with scripts/export_edm2.py");
}

void check_vae_batch(int vae_batch) {
  if (vae_batch < kMinVaeBatch)
    throw FieldError("vae_batch", "vae_batch must be at least " + std::to_string(kMinVaeBatch) + " (got " +
                                      std::to_string(vae_batch) + ")");
}

torch::Tensor decode_latents(const VaeDecoder& vae, const torch::Tensor& z, const std::vector<float>& scale,
                             const std::vector<float>& bias, int batch) {
  c10::InferenceMode guard;
  check_vae_batch(batch);
  const int64_t channels = z.size(1);
  if (static_cast<int64_t>(scale.size()) != channels || static_cast<int64_t>(bias.size()) != channels)
    throw UsageError("the VAE scale and bias have " + std::to_string(scale.size()) + " and " +
                     std::to_string(bias.size()) + " entries for " + std::to_string(channels) + " latent channels");
  auto per_channel = [&](const std::vector<float>& v) {
    return torch::tensor(v, torch::kFloat32).reshape({1, channels, 1, 1}).to(z.device());
  };
  // Subtract, then divide, in float32: EDM2's order, so the pixels truncate identically.
  torch::Tensor x = (z.to(torch::kFloat32) - per_channel(bias)) / per_channel(scale);
  std::vector<torch::Tensor> images;
  for (const auto& chunk : x.split(batch)) images.push_back(vae(chunk));
  return torch::cat(images).clamp(0, 1).mul(255).to(torch::kUInt8).to(torch::kCPU);
}

// ---- PixelDecoder: the decoder a sampling command uses

bool makes_latents(const ModelInfo& net) { return net.encoder.type == "vae"; }

PixelDecoder PixelDecoder::for_net(const ModelInfo& net, const std::string& net_name, const VaeDecoder* vae,
                                   int vae_batch) {
  if (vae_batch < 1) throw UsageError("the VAE batch must be at least 1");
  const int64_t res = net.img_resolution;
  if (!makes_latents(net)) {
    if (vae)
      throw UsageError("a VAE decodes latents, but " + net_name + " makes pixels (encoder " + net.encoder.type +
                       "); drop the VAE");
    if (net.img_channels != 1 && net.img_channels != 3)
      throw UsageError(net_name + " outputs " + std::to_string(net.img_channels) + " channels, which are not an image");
    return PixelDecoder({}, {}, nullptr, vae_batch, {net.img_channels, res, res});
  }
  if (!vae) throw UsageError(net_name + " makes SD-VAE latents and needs a VAE decoder to make pixels");
  check_vae_compatible(*vae, net, net_name);
  const int64_t f = vae->info().scale_factor;
  return PixelDecoder(net.encoder.scale, net.encoder.bias, vae, vae_batch, {vae->info().out_channels, res * f, res * f});
}

torch::Tensor PixelDecoder::operator()(const torch::Tensor& samples) {
  if (!vae_) return decode_rgb(samples);
  const auto start = std::chrono::steady_clock::now();
  torch::Tensor pixels = decode_latents(*vae_, samples, scale_, bias_, vae_batch_);
  vae_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return pixels;
}

nlohmann::json PixelDecoder::provenance() const {
  if (!vae_) return nlohmann::json::object();
  return {{"vae", std::filesystem::path(vae_->path()).filename().string()},
          {"vae_sha256", vae_->file_sha256().substr(0, 12)},  // the prefix length of the nets' hashes
          {"vae_dtype", to_string(vae_->precision())}};
}

}  // namespace autoguide
