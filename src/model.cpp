#include "autoguide/model.hpp"

#include <torch/csrc/jit/runtime/graph_executor.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>

#include "autoguide/error.hpp"
#include "fast_unet.hpp"
#include "float32_range.hpp"
#include "json_input.hpp"
#include "sha256.hpp"

namespace autoguide {

namespace {

const char* const kReexport = "; re-export the model with scripts/export_edm2.py";

// Limits that no EDM2 net comes near and that keep the allocations a file can ask for sane (noise is
// [N, channels, resolution, resolution], labels [N, label_dim]).
constexpr int kMaxResolution = 16384, kMaxChannels = 1024, kMaxLabels = 1 << 20;

// A value from the file, quoted in a message: escaped (no control characters) and short.
std::string short_json(const nlohmann::json& v) {
  const std::string text = v.dump();
  return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

const nlohmann::json& field(const nlohmann::json& j, const char* key, const std::string& origin) {
  if (!j.contains(key) || j[key].is_null()) throw UsageError(origin + ": metadata lacks '" + key + "'" + kReexport);
  return j[key];
}

int required_int(const nlohmann::json& j, const char* key, const std::string& origin) {
  const auto& v = field(j, key, origin);
  if (!is_int32(v)) throw UsageError(origin + ": metadata field '" + key + "' is not an integer" + kReexport);
  return v.get<int>();
}

std::string optional_string(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

std::optional<double> optional_number(const nlohmann::json& j, const char* key) {
  if (j.contains(key) && j[key].is_number()) return j[key].get<double>();
  return std::nullopt;
}

// The StabilityVAEEncoder's per-channel scale (a divisor) and bias, as float32 values.
std::vector<float> encoder_constants(const nlohmann::json& e, const char* key, bool divisor,
                                     const std::string& origin) {
  std::vector<float> out;
  if (!e.contains(key) || e[key].is_null()) return out;
  if (!e[key].is_array() || e[key].size() > size_t(kMaxChannels))
    throw UsageError(origin + ": encoder " + key + " is not a list of numbers" + kReexport);
  for (const auto& v : e[key]) {
    const double x = v.is_number() ? v.get<double>() : std::nan("");
    if (!fits_float32(x) || (divisor && static_cast<float>(x) == 0))
      throw UsageError(origin + ": encoder " + key + " holds " + short_json(v) +
                       ", not a " + (divisor ? "non-zero " : "") + "float32 number" + kReexport);
    out.push_back(static_cast<float>(x));
  }
  return out;
}

}  // namespace

ModelInfo parse_model_info(const std::string& json_text, const std::string& origin) {
  const nlohmann::json j = parse_json_input(json_text, origin + ": metadata", kReexport);
  if (!j.is_object()) throw UsageError(origin + ": metadata is not a JSON object" + kReexport);
  if (j.contains("kind") && j["kind"] == "vae")
    throw FieldError("vae", origin + " is a VAE decoder, not a diffusion net; give it as vae");
  ModelInfo m;
  m.raw = j;
  m.format_version = required_int(j, "format_version", origin);
  if (m.format_version != kFormatVersion)
    throw UsageError(origin + ": metadata format version " + std::to_string(m.format_version) +
                     " is not supported (expected " + std::to_string(kFormatVersion) + "); re-export the model");
  m.img_resolution = required_int(j, "img_resolution", origin);
  m.img_channels = required_int(j, "img_channels", origin);
  m.label_dim = required_int(j, "label_dim", origin);
  const auto& sigma_data = field(j, "sigma_data", origin);
  m.sigma_data = sigma_data.is_number() ? sigma_data.get<double>() : 0;
  if (m.img_resolution <= 0 || m.img_resolution > kMaxResolution || m.img_channels <= 0 ||
      m.img_channels > kMaxChannels || m.label_dim < 0 || m.label_dim > kMaxLabels || !(m.sigma_data > 0) ||
      !fits_float32(m.sigma_data))
    throw UsageError(origin + ": metadata has impossible shapes (resolution, channels, label_dim, sigma_data)");
  m.use_fp16 = j.contains("use_fp16") && j["use_fp16"].is_boolean() && j["use_fp16"].get<bool>();
  m.model_size = optional_string(j, "model_size");
  if (j.contains("model_channels") && is_int32(j["model_channels"]))
    m.model_channels = j["model_channels"].get<int>();
  if (j.contains("param_count") && j["param_count"].is_number_unsigned())
    m.param_count = static_cast<int64_t>(std::min<uint64_t>(j["param_count"].get<uint64_t>(), INT64_MAX));
  m.training_kimg = optional_number(j, "training_kimg");
  m.ema_std = optional_number(j, "ema_std");
  if (j.contains("encoder") && j["encoder"].is_object()) {
    const auto& e = j["encoder"];
    m.encoder.type = optional_string(e, "type");
    if (m.encoder.type != "rgb" && m.encoder.type != "vae")
      throw UsageError(origin + ": unknown encoder type " + short_json(e.contains("type") ? e["type"] : nullptr) +
                       " (known: rgb, vae)" + kReexport);
    m.encoder.scale = encoder_constants(e, "scale", true, origin);
    m.encoder.bias = encoder_constants(e, "bias", false, origin);
    m.encoder.vae_name = optional_string(e, "vae_name");
  }
  m.source_file = optional_string(j, "source_file");
  m.source_sha256 = optional_string(j, "source_sha256");
  return m;
}

void check_precision_runs(NetPrecision p, const torch::Device& device, const std::string& field) {
  if (p == NetPrecision::Auto || p == NetPrecision::FP32) return;
  const auto type = p == NetPrecision::FP16 ? torch::kFloat16 : torch::kBFloat16;
  try {
    c10::InferenceMode guard;
    auto opts = torch::TensorOptions().dtype(type).device(device);
    auto y = torch::conv2d(torch::ones({1, 8, 4, 4}, opts), torch::ones({8, 8, 3, 3}, opts), {}, 1, 1);
    (void)torch::softmax(torch::matmul(y.flatten(2), y.flatten(2).transpose(1, 2)), -1).sum().item<float>();
  } catch (const std::exception&) {
    throw FieldError(field, field + " " + to_string(p) + " is not supported on " + device.str() + "; set " + field +
                                " fp32" + (device.is_cpu() ? " or bf16" : ""));
  }
}

std::string to_string(NetPrecision p) {
  switch (p) {
    case NetPrecision::Auto: return "auto";
    case NetPrecision::FP32: return "fp32";
    case NetPrecision::FP16: return "fp16";
    case NetPrecision::BF16: return "bf16";
  }
  return "?";
}

NetPrecision effective_precision(NetPrecision requested, const ModelInfo& info, const torch::Device& device) {
  if (requested != NetPrecision::Auto) return requested;
  return device.is_cuda() && info.use_fp16 ? NetPrecision::FP16 : NetPrecision::FP32;
}

Denoiser Denoiser::load(const std::string& path, const torch::Device& device, NetPrecision precision, bool fast) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw UsageError("model file '" + path + "' not found; export one with scripts/export_edm2.py");
  // Fusers rewrite pointwise chains and may change the last bits; parity with the reference needs eager numerics.
  torch::jit::setGraphExecutorOptimize(false);
  torch::jit::ExtraFilesMap extra{{kMetadataName, ""}};
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, device, extra);
  } catch (const std::exception& e) {
    throw UsageError("'" + path + "' is not a readable TorchScript model (corrupt or truncated?); re-export it with scripts/export_edm2.py");
  }
  if (extra[kMetadataName].empty())
    throw UsageError("'" + path + "' carries no " + std::string(kMetadataName) +
                     " metadata; export it with scripts/export_edm2.py");
  ModelInfo info = parse_model_info(extra[kMetadataName], path);
  if (info.raw.contains("kind") && info.raw["kind"] == "snapshot_set")
    throw FieldError("ema", "'" + path + "' is a snapshot set: build a net from it at a post-hoc EMA length (ema)");
  return from_module(std::move(module), std::move(info), path, sha256_file(path), device, precision, fast);
}

Denoiser Denoiser::from_module(torch::jit::Module module, ModelInfo info, const std::string& path, std::string sha,
                               const torch::Device& device, NetPrecision precision, bool fast,
                               std::optional<PosthocEma> ema) {
  module.eval();
  if (!module.find_method("prepare"))
    throw UsageError("'" + path + "' has no prepare() method; re-export it with scripts/export_edm2.py");
  if (precision != NetPrecision::Auto) {
    if (!module.hasattr("force_dtype"))
      throw FieldError("precision", "'" + path + "' predates precision support; re-export it with scripts/export_edm2.py");
    const auto type = precision == NetPrecision::FP32   ? torch::kFloat32
                      : precision == NetPrecision::FP16 ? torch::kFloat16
                                                        : torch::kBFloat16;
    module.setattr("force_dtype", static_cast<int64_t>(type));
  }
  {
    c10::InferenceMode guard;
    module.get_method("prepare")({});
  }
  const NetPrecision used = effective_precision(precision, info, device);
  Denoiser net(std::move(module), std::move(info), path, std::move(sha), device, used);
  net.ema_ = std::move(ema);
  if (fast) net.fast_ = FastUNet::from_module(net.module_, path);
  net.fast_on_ = fast;
  return net;
}

Denoiser Denoiser::unbuilt(ModelInfo info, const std::string& path, std::string sha, const torch::Device& device,
                           NetPrecision precision, bool fast, std::optional<PosthocEma> ema) {
  const NetPrecision used = effective_precision(precision, info, device);
  Denoiser net(torch::jit::Module(), std::move(info), path, std::move(sha), device, used);
  net.ema_ = std::move(ema);
  net.fast_on_ = fast;
  net.built_ = false;
  return net;
}

void Denoiser::release() {
  module_ = torch::jit::Module();
  fast_.reset();
  built_ = false;
}

torch::Tensor Denoiser::operator()(const torch::Tensor& x, const torch::Tensor& sigma,
                                   const torch::Tensor& labels) const {
  if (!built_) throw std::logic_error("the net of " + path_ + " was released or never built");
  c10::InferenceMode guard;
  if (fast_) return (*fast_)(x, sigma, info_.conditional() ? labels : torch::Tensor());
  std::vector<torch::jit::IValue> args{x, sigma};
  args.emplace_back(info_.conditional() && labels.defined() ? torch::jit::IValue(labels) : torch::jit::IValue());
  return module_.forward(args).toTensor();
}

int64_t Denoiser::loaded_param_count() const {
  int64_t n = 0;
  if (!built_) return n;
  for (const auto& p : module_.parameters()) n += p.numel();
  return n;
}

std::string Denoiser::weights_sha256() const {
  if (!built_) throw std::logic_error("weights_sha256 of a net without weights");
  std::vector<torch::Tensor> kept;  // each tensor's bytes in memory order; the type too, so bf16 != fp16 bytes
  std::vector<std::string> types;
  auto add = [&](const torch::Tensor& t) {
    kept.push_back(t.detach().to(torch::kCPU).contiguous());
    types.emplace_back(kept.back().dtype().name());
  };
  for (const auto& p : module_.parameters()) add(p);
  for (const auto& b : module_.buffers()) add(b);
  // How it runs them: the same weights in bf16 or through the native U-Net make other images.
  const std::string how = to_string(precision_) + (fast_on_ ? " fast" : "");
  std::vector<std::pair<const void*, size_t>> pieces{{how.data(), how.size()}};
  for (size_t j = 0; j < kept.size(); ++j) {
    pieces.emplace_back(types[j].data(), types[j].size());
    pieces.emplace_back(kept[j].data_ptr(), kept[j].nbytes());
  }
  return sha256_pieces(pieces);
}

void check_compatible(const ModelInfo& main, const ModelInfo& guide, const std::string& guide_role) {
  auto mismatch = [&](const std::string& what, const std::string& a, const std::string& b) {
    throw UsageError("the " + guide_role + " does not match the main net: " + what + " " + b + " vs " + a +
                     "; both nets must be trained on the same data representation");
  };
  if (main.img_resolution != guide.img_resolution)
    mismatch("resolution", std::to_string(main.img_resolution), std::to_string(guide.img_resolution));
  if (main.img_channels != guide.img_channels)
    mismatch("channels", std::to_string(main.img_channels), std::to_string(guide.img_channels));
  if (main.sigma_data != guide.sigma_data)
    mismatch("sigma_data", std::to_string(main.sigma_data), std::to_string(guide.sigma_data));
  if (main.encoder.type != guide.encoder.type) mismatch("encoder", main.encoder.type, guide.encoder.type);
}

std::string human_count(int64_t n) {
  char buf[32];
  if (n >= 1000000000) std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  else if (n >= 1000000) std::snprintf(buf, sizeof buf, "%.1fM", n / 1e6);
  else if (n >= 1000) std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

}  // namespace autoguide
