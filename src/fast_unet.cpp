#include "fast_unet.hpp"

#include <cmath>
#include <optional>

#include "blas.hpp"
#include "autoguide/error.hpp"

namespace autoguide {
namespace {

using torch::Tensor;
using torch::jit::Module;

// Scale to unit RMS over `dim` (pixel norm, EDM2 Eq. 66's normalisation applied to activations).
Tensor normalize(const Tensor& x, at::IntArrayRef dim, double eps = 1e-4) {
  Tensor norm = at::linalg_vector_norm(x, 2, dim, /*keepdim=*/true, torch::kFloat32);
  const double alpha = std::sqrt(static_cast<double>(norm.numel()) / static_cast<double>(x.numel()));
  return x / norm.mul_(alpha).add_(eps).to(x.scalar_type());
}

// Magnitude-preserving SiLU (Eq. 81); the second form overwrites a tensor this path owns.
Tensor mp_silu(const Tensor& x) { return at::silu(x).div_(0.596); }
Tensor mp_silu_(Tensor x) { return at::silu_(x).div_(0.596); }

// Magnitude-preserving sum (Eq. 88).
Tensor mp_sum(const Tensor& a, const Tensor& b, double t) {
  return at::lerp(a, b, t).div_(std::sqrt((1 - t) * (1 - t) + t * t));
}

// Magnitude-preserving concatenation (Eq. 103).
Tensor mp_cat(const Tensor& a, const Tensor& b, double t) {
  const double na = static_cast<double>(a.size(1)), nb = static_cast<double>(b.size(1));
  const double c = std::sqrt((na + nb) / ((1 - t) * (1 - t) + t * t));
  return at::cat({a * (c / std::sqrt(na) * (1 - t)), b * (c / std::sqrt(nb) * t)}, 1);
}

[[noreturn]] void not_edm2(const std::string& path, const std::string& what) {
  throw FieldError("fast", "fast (the native U-Net) runs EDM2 U-Nets only, and '" + path + "' is not one (" +
                               what + "); turn fast off to sample it with its own forward");
}

// One attribute of an exported module, with a --fast error instead of a TorchScript one when it is missing.
c10::IValue attr(const Module& m, const std::string& name, const std::string& path) {
  if (!m.hasattr(name)) not_edm2(path, "no attribute '" + name + "'");
  return m.attr(name);
}

FastUNet::Conv read_conv(const Module& m, const std::string& path) {
  FastUNet::Conv c;
  c.w = attr(m, "w_eff", path).toTensor();
  if (c.w.numel() == 0) not_edm2(path, "weights not prepared");
  c.padding = attr(m, "padding", path).toInt();
  if (c.w.dim() == 4 && c.w.size(2) == 1 && c.w.size(3) == 1) {
    c.w = c.w.flatten(1).contiguous();
    c.pointwise = true;
  } else if (c.w.dim() == 4) {
    c.w = c.w.contiguous();
  } else if (c.w.dim() != 2) {
    not_edm2(path, "a convolution weight of " + std::to_string(c.w.dim()) + " dimensions");
  }
  return c;
}

std::optional<Module> optional_module(const Module& m, const std::string& name, const std::string& path) {
  c10::IValue v = attr(m, name, path);
  if (v.isNone()) return std::nullopt;
  return v.toModule();
}

FastUNet::Block read_block(const Module& m, const std::string& name, const std::string& path) {
  FastUNet::Block b;
  if (!m.hasattr("flavor")) {  // '{R}x{R}_conv': the encoder's first layer is a bare MPConv
    b.conv_only = true;
    b.res0 = read_conv(m, path);
    return b;
  }
  b.enc = attr(m, "flavor", path).toStringRef() == "enc";
  b.takes_skip = !b.enc && name.find("block") != std::string::npos;
  b.resample = attr(m, "resample_mode", path).toStringRef();
  if (b.resample != "keep") {
    b.resample_f = attr(m, "resample_f", path).toTensor();
    // EDM2's default [1,1] filter: down is a 2x2 mean, up (the filter times 4) copies each pixel to 2x2.
    const double box = b.resample == "down" ? 0.25 : 1.0;
    b.box_filter = b.resample_f.size(-1) == 2 && b.resample_f.eq(box).all().item<bool>();
  }
  b.res0 = read_conv(attr(m, "conv_res0", path).toModule(), path);
  b.res1 = read_conv(attr(m, "conv_res1", path).toModule(), path);
  b.emb_w = read_conv(attr(m, "emb_linear", path).toModule(), path).w.to(torch::kFloat32);
  if (auto skip = optional_module(m, "conv_skip", path)) b.skip = read_conv(*skip, path), b.has_skip = true;
  if (auto qkv = optional_module(m, "attn_qkv", path)) {
    auto proj = optional_module(m, "attn_proj", path);
    if (!proj) not_edm2(path, "attention without a projection");
    b.qkv = read_conv(*qkv, path);
    b.proj = read_conv(*proj, path);
    b.attention = true;
    b.heads = attr(m, "num_heads", path).toInt();
    b.attn_balance = attr(m, "attn_balance", path).toDouble();
  }
  b.res_balance = attr(m, "res_balance", path).toDouble();
  c10::IValue clip = attr(m, "clip_act", path);
  b.clip = clip.isNone() ? 0.0 : clip.toDouble();
  return b;
}

std::vector<FastUNet::Block> read_blocks(const Module& dict, const std::string& path) {
  std::vector<FastUNet::Block> out;
  for (const auto& child : dict.named_children()) out.push_back(read_block(child.value, child.name, path));
  return out;
}

}  // namespace

Tensor FastUNet::Conv::operator()(const Tensor& x) const {
  if (!pointwise) return at::conv2d(x, w, {}, 1, padding);
  const int64_t n = x.size(0), h = x.size(2), wd = x.size(3);
  // One product per image, [O,I] x [I,HW], with the weight broadcast (at::matmul would fold the batch into the
  // columns, and copy the activations to do so).
  return at::bmm(w.expand({n, w.size(0), w.size(1)}), x.reshape({n, x.size(1), h * wd})).view({n, w.size(0), h, wd});
}

Tensor FastUNet::Block::forward(Tensor x, const Tensor& emb) const {
  if (conv_only) return res0(x);
  // Main branch.
  if (resample == "down") {
    x = box_filter ? at::avg_pool2d(x, {2, 2})
                   : at::conv2d(x, resample_f, {}, 2, (resample_f.size(-1) - 1) / 2, 1, x.size(1));
  } else if (resample == "up") {
    if (box_filter) {
      x = at::upsample_nearest2d(x, {2 * x.size(2), 2 * x.size(3)});
    } else {  // LibTorch 1.13's CPU bf16 grouped transposed convolution returns the wrong shape (as in edm2.py)
      const auto pad = (resample_f.size(-1) - 1) / 2;
      x = at::conv_transpose2d(x.to(torch::kFloat32), resample_f.to(torch::kFloat32), {}, 2, pad, 0, x.size(1))
              .to(x.scalar_type());
    }
  }
  if (enc) {
    if (has_skip) x = skip(x);
    x = normalize(x, {1});
  }
  // Residual branch, modulated by the embedding (Figure 21).
  Tensor y = res0(mp_silu(x));
  Tensor c = at::matmul(emb, emb_w.t()).add_(1);
  y = mp_silu_(y.mul_(c.unsqueeze(2).unsqueeze(3).to(y.scalar_type())));
  y = res1(y);
  if (!enc && has_skip) x = skip(x);
  x = mp_sum(x, y, res_balance);
  if (attention) {
    // q, k, v interleaved per head as [head][channel][q|k|v]; two batched products on [n*heads] matrices.
    const int64_t n = x.size(0), ch = x.size(1), hw = x.size(2) * x.size(3);
    Tensor t = normalize(qkv(x).view({n, heads, -1, 3, hw}), {2});
    const int64_t per_head = t.size(2);
    Tensor q = t.select(3, 0).reshape({n * heads, per_head, hw});
    Tensor k = t.select(3, 1).reshape({n * heads, per_head, hw});
    Tensor v = t.select(3, 2).reshape({n * heads, per_head, hw});
    Tensor w = at::bmm(q.transpose(1, 2), k).mul_(1 / std::sqrt(static_cast<double>(per_head))).softmax(2);
    y = proj(at::bmm(v, w.transpose(1, 2)).view({n, ch, x.size(2), x.size(3)}));
    x = mp_sum(x, y, attn_balance);
  }
  if (clip > 0) x = x.clamp_(-clip, clip);
  return x;
}

std::shared_ptr<const FastUNet> FastUNet::from_module(const Module& precond, const std::string& path) {
  auto f = std::make_shared<FastUNet>();
  f->sigma_data_ = attr(precond, "sigma_data", path).toDouble();
  f->label_dim_ = attr(precond, "label_dim", path).toInt();
  const Module unet = attr(precond, "unet", path).toModule();
  const Module fourier = attr(unet, "emb_fourier", path).toModule();
  f->freqs_ = attr(fourier, "freqs", path).toTensor().to(torch::kFloat32);
  f->phases_ = attr(fourier, "phases", path).toTensor().to(torch::kFloat32);
  f->emb_noise_w_ = read_conv(attr(unet, "emb_noise", path).toModule(), path).w;
  if (auto label = optional_module(unet, "emb_label", path)) f->emb_label_w_ = read_conv(*label, path).w;
  f->label_balance_ = attr(unet, "label_balance", path).toDouble();
  f->concat_balance_ = attr(unet, "concat_balance", path).toDouble();
  f->out_conv_ = read_conv(attr(unet, "out_conv", path).toModule(), path);
  f->dtype_ = f->out_conv_.w.scalar_type();
  f->enc_ = read_blocks(attr(unet, "enc", path).toModule(), path);
  f->dec_ = read_blocks(attr(unet, "dec", path).toModule(), path);
  if (f->enc_.empty() || !f->enc_.front().conv_only) not_edm2(path, "no first convolution");
  return f;
}

Tensor FastUNet::unet(const Tensor& x, const Tensor& noise_labels, const Tensor& labels) const {
  // Embedding, fp32 throughout: magnitude-preserving Fourier features (Eq. 75), then the linear layers.
  Tensor emb = at::outer(noise_labels, freqs_).add_(phases_).cos_().mul_(std::sqrt(2.0));
  emb = at::matmul(emb, emb_noise_w_.t());
  if (emb_label_w_.defined()) {
    Tensor e = at::matmul(labels * std::sqrt(static_cast<double>(labels.size(1))), emb_label_w_.t());
    emb = mp_sum(emb, e, label_balance_);
  }
  emb = mp_silu_(emb);

  // Encoder; a constant channel of ones lets the first convolution see the image border.
  Tensor h = at::cat({x, at::ones_like(x.narrow(1, 0, 1))}, 1);
  std::vector<Tensor> skips;
  for (const Block& b : enc_) skips.push_back(h = b.forward(h, emb));
  for (const Block& b : dec_) {
    if (b.takes_skip) {
      h = mp_cat(h, skips.back(), concat_balance_);
      skips.pop_back();
    }
    h = b.forward(h, emb);
  }
  return out_conv_(h);
}

Tensor FastUNet::operator()(const Tensor& x_in, const Tensor& sigma_in, const Tensor& labels_in) const {
  Tensor x = x_in.to(torch::kFloat32);
  Tensor sigma = sigma_in.to(torch::kFloat32).reshape({-1, 1, 1, 1});
  Tensor labels;
  if (label_dim_ != 0) {
    labels = labels_in.defined() && labels_in.numel() > 0
                 ? labels_in.to(torch::kFloat32).reshape({-1, label_dim_})
                 : torch::zeros({1, label_dim_}, x.options());
  }
  // EDM preconditioning (EDM Table 1).
  const double sd = sigma_data_;
  Tensor s2 = sigma * sigma + sd * sd;
  Tensor c_skip = s2.reciprocal() * (sd * sd);
  Tensor c_out = sigma * sd / s2.sqrt();
  Tensor c_in = s2.sqrt().reciprocal();
  Tensor c_noise = sigma.flatten().log() / 4;
  Tensor F = unet((c_in * x).to(dtype_), c_noise, labels);
  return c_skip * x + c_out * F.to(torch::kFloat32);
}

}  // namespace autoguide
