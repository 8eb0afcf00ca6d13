#include "lazy_archive.hpp"

#include <caffe2/serialize/file_adapter.h>
#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <functional>
#include <mutex>
#include <vector>

#include "autoguide/error.hpp"

namespace autoguide {

namespace {

// The file, except that a read starting at a tensor record's bytes (how PyTorchStreamReader::getRecord reads a
// stored record: one read into the storage it allocated) leaves the buffer unwritten and notes which record
// and how many bytes the buffer was to hold. load() then checks that each skipped read is exactly one
// storage's bytes, so a LibTorch that read records in pieces is refused rather than left with unread bytes.
class SkipTensorBytes : public caffe2::serialize::ReadAdapterInterface {
 public:
  SkipTensorBytes(const std::string& path, std::map<uint64_t, std::pair<std::string, size_t>> records)
      : file_(path), records_(std::move(records)) {}
  size_t size() const override { return file_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* what) const override {
    if (auto it = records_.find(pos); it != records_.end() && n <= it->second.second && n > 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      skipped_[buf] = {it->second.first, n};
      return n;
    }
    return file_.read(pos, buf, n, what);
  }
  // Each buffer left unwritten, with its record and the bytes it was to hold.
  std::map<const void*, std::pair<std::string, size_t>> skipped() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return skipped_;
  }

 private:
  caffe2::serialize::FileAdapter file_;
  std::map<uint64_t, std::pair<std::string, size_t>> records_;  // data offset -> (record, bytes)
  mutable std::mutex mutex_;
  mutable std::map<const void*, std::pair<std::string, size_t>> skipped_;
};

// Each tensor record's data offset, and a bound on its size: the next record's offset (or the file's end).
std::map<uint64_t, std::pair<std::string, size_t>> tensor_records(caffe2::serialize::PyTorchStreamReader& reader,
                                                                  const std::string& path) {
  std::vector<std::pair<uint64_t, std::string>> by_offset;
  for (const std::string& name : reader.getAllRecords())
    if (name.rfind("data/", 0) == 0) by_offset.emplace_back(reader.getRecordOffset(name), name);
  std::sort(by_offset.begin(), by_offset.end());
  // PyTorchStreamReader does not tell a record's size without reading it; the exact size is the storage's,
  // checked after loading.
  std::map<uint64_t, std::pair<std::string, size_t>> out;
  const caffe2::serialize::FileAdapter file(path);
  for (size_t k = 0; k < by_offset.size(); ++k) {
    const uint64_t end = k + 1 < by_offset.size() ? by_offset[k + 1].first : file.size();
    out[by_offset[k].first] = {by_offset[k].second, static_cast<size_t>(end - by_offset[k].first)};
  }
  return out;
}

// Every tensor reachable from `v` (object slots, lists, dicts, tuples).
void each_tensor(const c10::IValue& v, const std::function<void(const at::Tensor&)>& f) {
  if (v.isTensor()) {
    f(v.toTensor());
  } else if (v.isObject()) {
    const auto obj = v.toObject();
    for (size_t i = 0; i < obj->slots().size(); ++i) each_tensor(obj->getSlot(i), f);
  } else if (v.isList()) {
    for (const c10::IValue& e : v.toListRef()) each_tensor(e, f);
  } else if (v.isGenericDict()) {
    for (const auto& e : v.toGenericDict()) each_tensor(e.value(), f);
  } else if (v.isTuple()) {
    for (const c10::IValue& e : v.toTupleRef().elements()) each_tensor(e, f);
  }
}

}  // namespace

std::shared_ptr<LazyArchive> LazyArchive::load(const std::string& path, torch::jit::ExtraFilesMap& extra) {
  std::shared_ptr<LazyArchive> a(new LazyArchive());
  a->path_ = path;
  a->reader_ = std::make_shared<caffe2::serialize::PyTorchStreamReader>(path);
  auto records = tensor_records(*a->reader_, path);
  auto adapter = std::make_shared<SkipTensorBytes>(path, std::move(records));
  a->module_ = torch::jit::load(std::static_pointer_cast<caffe2::serialize::ReadAdapterInterface>(adapter),
                                torch::kCPU, extra);
  const auto skipped = adapter->skipped();
  each_tensor(a->module_._ivalue(), [&](const at::Tensor& t) {
    const c10::Storage& s = t.storage();
    if (!s || a->records_.count(s.unsafeGetStorageImpl())) return;
    auto it = skipped.find(s.data());
    if (it == skipped.end()) return;  // read in full: stays as it is
    if (it->second.second == s.nbytes()) a->records_[s.unsafeGetStorageImpl()] = {s, it->second.first, s.nbytes()};
  });
  if (a->records_.size() != skipped.size())
    throw std::runtime_error("this LibTorch reads '" + path + "' in a way the lazy loader cannot follow");
  for (auto& [impl, r] : a->records_) r.storage.set_data_ptr_noswap(at::DataPtr(nullptr, r.storage.device()));
  return a;
}

void LazyArchive::fill(const at::Tensor& t) {
  auto it = records_.find(t.storage().unsafeGetStorageImpl());
  if (it == records_.end() || it->second.storage.data() != nullptr) return;
  auto [data, size] = reader_->getRecord(it->second.name);
  if (size != it->second.bytes)
    throw UsageError("'" + path_ + "' changed while in use (" + it->second.name + "); run again");
  it->second.storage.set_data_ptr_noswap(std::move(data));
}

void LazyArchive::empty(const at::Tensor& t) {
  auto it = records_.find(t.storage().unsafeGetStorageImpl());
  if (it != records_.end()) it->second.storage.set_data_ptr_noswap(at::DataPtr(nullptr, it->second.storage.device()));
}

bool LazyArchive::is_empty(const at::Tensor& t) const {
  auto it = records_.find(t.storage().unsafeGetStorageImpl());
  return it != records_.end() && it->second.storage.data() == nullptr;
}

}  // namespace autoguide
