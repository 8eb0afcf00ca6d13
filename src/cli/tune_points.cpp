#include "tune_points.hpp"

#include <algorithm>

#include "atomic_file.hpp"
#include "npy.hpp"

namespace fs = std::filesystem;

namespace autoguide::cli {

int64_t PointStore::have(const std::string& key) const {
  const auto it = features_.find(key);
  return it == features_.end() ? 0 : it->second.front().size(0);
}

void PointStore::save(const std::string& key) const {
  fs::create_directories(dir_);
  const std::vector<torch::Tensor>& f = features_.at(key);
  for (size_t k = 0; k < spaces_.size(); ++k)
    write_file_atomic((dir_ / (key + "." + spaces_[k] + ".npy")).string(), encode_npy(f[k]));
}

void PointStore::append(const std::string& key, const std::vector<torch::Tensor>& more) {
  std::vector<torch::Tensor>& f = features_[key];
  if (f.empty()) {
    f = more;
  } else {
    for (size_t k = 0; k < spaces_.size(); ++k) f[k] = torch::cat({f[k], more[k]});
  }
  save(key);
}

size_t PointStore::load(const fs::path& dir) {
  if (!fs::is_directory(dir)) return 0;
  std::map<std::string, std::vector<torch::Tensor>> found;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".npy") continue;
    const std::string stem = e.path().stem().string();  // KEY.SPACE
    for (size_t k = 0; k < spaces_.size(); ++k) {
      const std::string tail = "." + spaces_[k];
      if (stem.size() <= tail.size() || stem.compare(stem.size() - tail.size(), tail.size(), tail) != 0) continue;
      auto& v = found[stem.substr(0, stem.size() - tail.size())];
      v.resize(spaces_.size());
      v[k] = read_npy(e.path().string()).to(torch::kFloat32);
    }
  }
  size_t taken = 0;
  for (auto& entry : found) {
    const std::string& key = entry.first;
    std::vector<torch::Tensor>& v = entry.second;  // not a structured binding: the lambda uses it (clang, C++17)
    // A point whose spaces disagree in length was cut by a kill between two files: it is measured again.
    const int64_t rows = v.front().defined() ? v.front().size(0) : -1;
    const bool whole = std::all_of(v.begin(), v.end(), [rows](const torch::Tensor& t) {
      return t.defined() && t.dim() == 2 && t.size(0) == rows;
    });
    if (!whole || v.front().size(0) <= have(key)) continue;
    features_[key] = v;
    if (dir != dir_) save(key);  // a resumed run of this one finds them in its own folder
    ++taken;
  }
  return taken;
}

}  // namespace autoguide::cli
