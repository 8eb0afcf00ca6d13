#include "autoguide/detector.hpp"

#include <filesystem>
#include <sstream>

#include "autoguide/error.hpp"
#include "autoguide/stop.hpp"

namespace autoguide {

namespace {

// TorchScript errors are a traceback; the last line names the actual failure.
std::string last_line(const std::string& text) {
  std::istringstream in(text);
  std::string line, last;
  while (std::getline(in, line))
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line.substr(line.find_first_not_of(" \t"));
  return last;
}

std::string shape_str(const torch::Tensor& t) {
  std::string s;
  for (int64_t d : t.sizes()) s += (s.empty() ? "" : ",") + std::to_string(d);
  return "[" + s + "]";
}

}  // namespace

Detector Detector::load(const std::string& path, const torch::Device& device) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw UsageError("detector file '" + path + "' not found");
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, device);
  } catch (const std::exception&) {
    throw UsageError("'" + path + "' is not a readable TorchScript detector (corrupt, truncated, or not TorchScript?)");
  }
  if (!module.find_method("forward")) throw UsageError("detector '" + path + "' has no forward() method");
  module.eval();
  return Detector(std::move(module), path, device);
}

torch::Tensor Detector::operator()(const torch::Tensor& images) {
  c10::InferenceMode guard;
  torch::jit::IValue out;
  const std::string input = "uint8 " + shape_str(images);
  try {
    out = module_.forward({images.to(device_)});
  } catch (const c10::Error& e) {
    throw UsageError("detector '" + path_ + "' failed on " + input +
                     " images: " + last_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {  // the TorchScript interpreter rethrows as std::runtime_error
    throw UsageError("detector '" + path_ + "' failed on " + input + " images: " + last_line(e.what()));
  }
  if (!out.isTensor())
    throw UsageError("detector '" + path_ + "' returned a " + out.tagKind() + ", not a tensor of features [N,D]");
  torch::Tensor f = out.toTensor();
  if (f.dim() != 2 || f.size(0) != images.size(0))
    throw UsageError("detector '" + path_ + "' returned " + shape_str(f) + " for " + input +
                     " images; expected features [" + std::to_string(images.size(0)) + ",D]");
  if (!f.is_floating_point()) f = f.to(torch::kFloat32);
  if (f.size(1) == 0) throw UsageError("detector '" + path_ + "' returned empty feature vectors " + shape_str(f));
  if (dim_ == 0) dim_ = f.size(1);
  if (f.size(1) != dim_)
    throw UsageError("detector '" + path_ + "' returned " + std::to_string(f.size(1)) + " features per image after " +
                     std::to_string(dim_) + " earlier");
  if (!torch::isfinite(f).all().item<bool>())
    throw UsageError("detector '" + path_ + "' returned NaN or infinite features for " + input + " images");
  return f;
}

void extract_features(Detector& detector, const ImageSet& images, int64_t batch, const Shard& shard,
                      const std::function<void(const torch::Tensor&, const IndexRange&)>& sink) {
  for (const IndexRange& r : rank_batches(images.size(), batch, shard)) {
    throw_if_stop_requested();  // SIGTERM / SIGINT: stop between batches
    sink(detector(images.load(r.begin, r.size())), r);
  }
}

}  // namespace autoguide
