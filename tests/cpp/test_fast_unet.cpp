// --fast (the native U-Net) against the exported forward it replaces, on the tiny exported EDM2 nets.
#include <gtest/gtest.h>

#include <ATen/record_function.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

#include "autoguide/error.hpp"
#include "autoguide/model.hpp"
#include "npy.hpp"
#include "fixtures.hpp"

using namespace autoguide;

namespace {

const char* const kSigmas[] = {"0.002", "0.05", "0.5", "1", "5", "80"};

// Every operator a forward dispatches, by name (RecordFunction sees each one, as the profiler does).
thread_local std::map<std::string, int>* g_ops = nullptr;

// A copy of a whole tensor; the 1-element copies LibTorch makes of a Python-number operand are not layout copies.
bool copies_data(const at::RecordFunction& fn) {
  for (const auto& v : fn.inputs())
    if (v.isTensor() && v.toTensor().numel() > 1) return true;
  return false;
}

std::unique_ptr<at::ObserverContext> count_op(const at::RecordFunction& fn) {
  if (g_ops && copies_data(fn)) ++(*g_ops)[fn.name()];
  return nullptr;
}

std::map<std::string, int> ops_of(const std::function<void()>& run) {
  std::map<std::string, int> ops;
  g_ops = &ops;
  auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(count_op).needsInputs(true));
  run();
  at::removeCallback(handle);
  g_ops = nullptr;
  return ops;
}

}  // namespace

TEST(FastUNet, MatchesTheExportedForwardInFp32) {
  auto x = read_npy(fixture("x.npy"));
  auto labels = read_npy(fixture("labels.npy"));
  for (const std::string role : {"main", "uncond"}) {
    auto exact = Denoiser::load(fixture(role + ".pt"), torch::kCPU);
    auto fast = Denoiser::load(fixture(role + ".pt"), torch::kCPU, NetPrecision::Auto, /*fast=*/true);
    EXPECT_FALSE(exact.fast());
    EXPECT_TRUE(fast.fast());
    for (const char* sigma : kSigmas) {
      auto s = torch::full({x.size(0)}, std::stof(sigma));
      const auto l = exact.info().conditional() ? labels : torch::Tensor();
      const auto expected = exact(x, s, l);
      const double err = max_relative_error(fast(x, s, l), expected);
      std::cout << "[ measured ] " << role << " sigma " << sigma << ": fast vs exact, max relative error " << err
                << "\n";
      EXPECT_LT(err, 1e-4) << role << " sigma " << sigma;
      EXPECT_GT((expected - x).abs().max().item<double>(), 1e-3);  // the net does something at this sigma
      if (exact.info().conditional()) {  // no labels: both feed EDM2's zero label vector
        EXPECT_LT(max_relative_error(fast(x, s, torch::Tensor()), exact(x, s, torch::Tensor())), 1e-4);
      }
    }
  }
}

TEST(FastUNet, Bf16AddsNoMoreErrorThanBf16Itself) {
  // The tolerance: fast bf16 may differ from fp32 by at most twice what the exported forward's own bf16 does
  // (bf16 keeps 8 bits of mantissa; the two paths round at different places).
  auto x = read_npy(fixture("x.npy"));
  auto labels = read_npy(fixture("labels.npy"));
  auto fp32 = Denoiser::load(fixture("main.pt"), torch::kCPU);
  auto exact = Denoiser::load(fixture("main.pt"), torch::kCPU, NetPrecision::BF16);
  auto fast = Denoiser::load(fixture("main.pt"), torch::kCPU, NetPrecision::BF16, true);
  for (const char* sigma : kSigmas) {
    auto s = torch::full({x.size(0)}, std::stof(sigma));
    const auto reference = fp32(x, s, labels);
    const double own = max_relative_error(exact(x, s, labels), reference);
    const double err = max_relative_error(fast(x, s, labels), reference);
    std::cout << "[ measured ] sigma " << sigma << ": bf16 vs fp32, exported " << own << ", fast " << err << "\n";
    EXPECT_LT(err, 2 * own + 1e-3) << "sigma " << sigma;
  }
}

TEST(FastUNet, KeepsItsLayoutThroughAWholeForward) {
  auto x = read_npy(fixture("x.npy"));
  auto labels = read_npy(fixture("labels.npy"));
  auto fast = Denoiser::load(fixture("main.pt"), torch::kCPU, NetPrecision::Auto, true);
  auto exact = Denoiser::load(fixture("main.pt"), torch::kCPU);
  auto s = torch::full({x.size(0)}, 1.0f);
  const auto fast_ops = ops_of([&] { fast(x, s, labels); });
  const auto exact_ops = ops_of([&] { exact(x, s, labels); });
  if (std::getenv("AUTOGUIDE_PRINT_OPS"))
    for (const auto& [name, n] : fast_ops) std::cout << name << " " << n << "\n";
  // The exported forward does copy (einsum's operands), so the counter does see copies when they happen.
  EXPECT_GT(exact_ops.count("aten::copy_") ? exact_ops.at("aten::copy_") : 0, 0);
  for (const char* copy : {"aten::copy_", "aten::contiguous", "aten::clone", "aten::to_dense", "aten::to_mkldnn",
                           "aten::_slow_conv2d_forward", "aten::einsum"}) {
    EXPECT_EQ(fast_ops.count(copy), 0u) << copy << " ran " << fast_ops.at(copy) << " times in a fast forward";
  }
  EXPECT_GT(fast_ops.count("aten::mkldnn_convolution") + fast_ops.count("aten::conv2d"), 0u);
}

TEST(FastUNet, RefusesANetThatIsNotAnEdm2UNet) {
  try {
    Denoiser::load(fixture("faulty.pt"), torch::kCPU, NetPrecision::Auto, true);
    FAIL() << "faulty.pt loaded with --fast";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("turn fast off"), std::string::npos) << e.what();
  }
}
