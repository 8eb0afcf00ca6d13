#include "autoguide/image_set.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "autoguide/decoder.hpp"
#include "autoguide/error.hpp"
#include "npy.hpp"
#include "autoguide/png.hpp"

namespace fs = std::filesystem;

namespace autoguide {

namespace {

bool is_png_name(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png";
}

std::string shape_str(const std::array<int64_t, 3>& s) {
  return std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" + std::to_string(s[2]);
}

}  // namespace

ImageSet ImageSet::open(const std::string& path) {
  ImageSet set;
  set.path_ = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file() && is_png_name(it->path())) set.files_.push_back(it->path().string());
    if (ec) throw UsageError("cannot list image folder '" + path + "': " + ec.message());
    if (set.files_.empty()) throw UsageError("image folder '" + path + "' holds no PNG images");
    // Sorted, so that a set's order (and features written from it) does not depend on the file system.
    std::sort(set.files_.begin(), set.files_.end());
    set.shape_ = png_shape(set.files_.front());
    for (const auto& f : set.files_) {
      const auto s = png_shape(f);
      if (s != set.shape_)
        throw UsageError("images of mixed sizes in '" + path + "': " + set.files_.front() + " is " +
                         shape_str(set.shape_) + " (CxHxW), " + f + " is " + shape_str(s));
    }
    set.count_ = static_cast<int64_t>(set.files_.size());
    return set;
  }
  if (!fs::exists(path, ec))
    throw UsageError("image set '" + path + "' does not exist; give a folder of PNGs or a .npy file");
  const NpyHeader h = read_npy_header(path);
  if (h.shape.size() != 4)
    throw UsageError("'" + path + "' holds an array of " + std::to_string(h.shape.size()) +
                     " dimensions; images must be [N,C,H,W]");
  if (h.dtype != torch::kUInt8 && h.dtype != torch::kFloat32 && h.dtype != torch::kFloat64)
    throw UsageError("'" + path + "' holds int64 values; images must be uint8 pixels or float samples in [-1,1]");
  if (h.shape[0] == 0) throw UsageError("'" + path + "' holds no images");
  set.npy_dtype_ = h.dtype;
  set.npy_offset_ = h.data_offset;
  set.count_ = h.shape[0];
  set.shape_ = {h.shape[1], h.shape[2], h.shape[3]};
  return set;
}

std::string ImageSet::describe() const {
  return std::to_string(count_) + " images of " + shape_str(shape_) + " from " + path_;
}

torch::Tensor ImageSet::load(int64_t start, int64_t count) const {
  TORCH_CHECK(start >= 0 && count >= 0 && start + count <= count_, "ImageSet::load out of range");
  if (!files_.empty()) {
    std::vector<torch::Tensor> images;
    for (int64_t i = start; i < start + count; ++i) {
      auto img = read_png(files_[static_cast<size_t>(i)]);
      // The headers were checked in open(); a file replaced since then must not slip through.
      if (img.size(0) != shape_[0] || img.size(1) != shape_[1] || img.size(2) != shape_[2])
        throw UsageError("image " + files_[static_cast<size_t>(i)] + " changed size while being read");
      images.push_back(img);
    }
    return torch::stack(images);
  }
  auto batch = torch::empty({count, shape_[0], shape_[1], shape_[2]}, torch::TensorOptions().dtype(npy_dtype_));
  const size_t image_bytes = c10::elementSize(npy_dtype_) * static_cast<size_t>(shape_[0] * shape_[1] * shape_[2]);
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(npy_offset_ + static_cast<size_t>(start) * image_bytes));
  in.read(static_cast<char*>(batch.data_ptr()), static_cast<std::streamsize>(batch.nbytes()));
  if (!in)
    throw UsageError("cannot read images " + std::to_string(start) + ".." + std::to_string(start + count - 1) +
                     " from '" + path_ + "' (file changed or truncated?)");
  return npy_dtype_ == torch::kUInt8 ? batch : decode_rgb(batch);
}

}  // namespace autoguide
