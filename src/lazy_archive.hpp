// A TorchScript archive loaded without its tensors' bytes. torch::jit::load reads every tensor record into
// memory, so a snapshot set of 64 snapshots of 238 MB would be resident in full before the first one is
// used. Here the archive's reader skips the bytes of each tensor record as torch::jit::load reads it: the
// storage is allocated but never written (its pages are never touched, so they never become resident), and
// once loaded every such storage is emptied and remembered with its record. fill() then reads a storage's
// bytes from the file when they are needed and empty() gives them back: peak memory is what is filled, plus,
// while loading, the page of each skipped buffer that the allocator writes its own header into (4 KiB a
// tensor record: 100 MiB for the 25,000 records of a 400 MiB set of small tensors, far less for large ones).
#pragma once
#include <torch/script.h>

#include <map>
#include <memory>
#include <string>

namespace caffe2::serialize {
class PyTorchStreamReader;
}

namespace autoguide {

class LazyArchive {
 public:
  // Loads `path` on the CPU (`extra`: torch::jit::load's extra files). Throws what torch::jit::load throws.
  static std::shared_ptr<LazyArchive> load(const std::string& path, torch::jit::ExtraFilesMap& extra);

  torch::jit::Module& module() { return module_; }

  // Reads the bytes of `t`'s storage from the file, unless they are already there (or were never left in it).
  // Throws UsageError when the record no longer matches (the file changed under us).
  void fill(const at::Tensor& t);
  // Frees the bytes of `t`'s storage, when they came from fill(); the tensor must not be read until filled again.
  void empty(const at::Tensor& t);

 private:
  LazyArchive() = default;
  struct Record {
    c10::Storage storage;
    std::string name;
    size_t bytes = 0;
  };
  std::string path_;
  torch::jit::Module module_;
  std::shared_ptr<caffe2::serialize::PyTorchStreamReader> reader_;
  std::map<const c10::StorageImpl*, Record> records_;  // the storages whose bytes stay in the file
};

}  // namespace autoguide
