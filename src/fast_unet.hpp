// The opt-in fast CPU path (--fast): the same EDM2 denoiser as the exported TorchScript forward, run natively
// from its prepared weights with other kernels. Not bit-identical to the reference (the default
// path is); its outputs match it to a relative 1e-5 in fp32 (tests/cpp/test_fast_unet.cpp).
//
// What it changes against the exported forward (each a kernel that is faster on some CPUs, per layer shape):
//  - 1x1 convolutions (skips, attention projections) are batched matrix products on the BLAS;
//  - attention is two batched matrix products on contiguous operands instead of einsum's strided ones;
//  - EDM2's [1,1] resampling filters are exact 2x2 average pooling and nearest upsampling, instead of
//    depthwise convolutions (the transposed one runs one group at a time);
//  - pointwise work is done in place, and no activation is ever copied to another layout.
// On an AVX2-only CPU this gains nothing: the exported forward already runs at 88% of the sum of the best
// per-layer kernel times (scripts/bench/bench_bound.py, docs/benchmarks.md), and --fast measures 0.96-1.07x of its speed.
#pragma once
#include <torch/script.h>

#include <memory>
#include <string>
#include <vector>

namespace autoguide {

class FastUNet {
 public:
  // Reads the prepared weights and the architecture of an exported EDM2 Precond (prepare() already run).
  // Throws UsageError naming `path` when the module is not an EDM2 U-Net this path knows.
  static std::shared_ptr<const FastUNet> from_module(const torch::jit::Module& precond, const std::string& path);

  // D(x; sigma, labels) as Precond.forward computes it: x [N,C,R,R], sigma [N] or 0-dim, labels [N,L] or
  // undefined (a zero label vector for a conditional net, as EDM2 does).
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& sigma, const torch::Tensor& labels) const;

  struct Conv {
    torch::Tensor w;  // 3x3: [O,I,3,3]; 1x1 and linear: [O,I]
    int64_t padding = 0;
    bool pointwise = false;  // 1x1: a matrix product
    torch::Tensor operator()(const torch::Tensor& x) const;
  };
  struct Block {
    bool conv_only = false;      // the encoder's first layer, a bare 3x3 convolution (in res0)
    bool enc = true;
    std::string resample;        // "keep", "up", "down"
    torch::Tensor resample_f;    // the depthwise filter when it is not EDM2's [1,1]
    bool box_filter = false;     // [1,1]: pooling / nearest upsampling are exact
    Conv res0, res1, skip, qkv, proj;
    torch::Tensor emb_w;         // [O, emb], fp32
    bool has_skip = false, attention = false;
    int64_t heads = 0;
    double res_balance = 0.3, attn_balance = 0.3, clip = 0;  // clip 0 = none
    bool takes_skip = false;     // a decoder '_block': concatenates the next skip connection first
    torch::Tensor forward(torch::Tensor x, const torch::Tensor& emb) const;
  };

 private:
  torch::Tensor unet(const torch::Tensor& x, const torch::Tensor& noise_labels, const torch::Tensor& labels) const;

  double sigma_data_ = 0.5;
  int64_t label_dim_ = 0;
  torch::ScalarType dtype_ = torch::kFloat32;  // the U-Net's activations; the embedding stays fp32
  torch::Tensor freqs_, phases_, emb_noise_w_, emb_label_w_;
  double label_balance_ = 0.5, concat_balance_ = 0.5;
  Conv out_conv_;
  std::vector<Block> enc_, dec_;
};

}  // namespace autoguide
