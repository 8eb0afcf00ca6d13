#include "lazy_archive.hpp"

#include <caffe2/serialize/file_adapter.h>
#include <caffe2/serialize/inline_container.h>

#include <functional>
#include <mutex>
#include <vector>

#include "autoguide/error.hpp"

namespace autoguide {

namespace {

// The file, except that a read of exactly a tensor record's bytes (how PyTorchStreamReader::getRecord reads a
// stored record: one read into the storage it allocated) leaves the buffer unwritten and notes which record
// the buffer was to hold. load() then checks that each skipped read is exactly one storage's bytes, so a
// LibTorch that read otherwise is refused rather than left with unread bytes.
class SkipTensorBytes : public caffe2::serialize::ReadAdapterInterface {
 public:
  SkipTensorBytes(const std::string& path, std::map<uint64_t, std::pair<std::string, size_t>> records)
      : file_(path), records_(std::move(records)) {}
  size_t size() const override { return file_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* what) const override {
    if (auto it = records_.find(pos); it != records_.end() && n == it->second.second) {
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

uint64_t le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int k = bytes - 1; k >= 0; --k) v = v << 8 | p[k];
  return v;
}

// Each record's size, from the archive's central directory (ZIP64 where PyTorch's writer used it): not in
// PyTorchStreamReader's interface short of reading the record.
std::map<std::string, uint64_t> record_sizes(const caffe2::serialize::FileAdapter& file, const std::string& path) {
  auto bad = [&] { return std::runtime_error("'" + path + "': damaged zip directory"); };
  auto bytes = [&](uint64_t pos, size_t n) {
    std::vector<unsigned char> b(n);
    if (pos > file.size() || n > file.size() - pos || file.read(pos, b.data(), n, "zip directory") != n) throw bad();
    return b;
  };
  if (file.size() < 22) throw bad();
  const uint64_t eocd = file.size() - 22;  // PyTorch writes no archive comment
  auto end = bytes(eocd, 22);
  if (le(end.data(), 4) != 0x06054b50) throw bad();
  uint64_t entries = le(&end[10], 2), cd_offset = le(&end[16], 4);
  if (entries == 0xFFFF || cd_offset == 0xFFFFFFFF) {  // ZIP64: the locator, then the ZIP64 end record
    if (eocd < 20) throw bad();
    auto loc = bytes(eocd - 20, 20);
    if (le(loc.data(), 4) != 0x07064b50) throw bad();
    auto end64 = bytes(le(&loc[8], 8), 56);
    if (le(end64.data(), 4) != 0x06064b50) throw bad();
    entries = le(&end64[32], 8), cd_offset = le(&end64[48], 8);
  }
  std::map<std::string, uint64_t> sizes;
  uint64_t pos = cd_offset;
  for (uint64_t k = 0; k < entries; ++k) {
    auto h = bytes(pos, 46);
    if (le(h.data(), 4) != 0x02014b50) throw bad();
    const size_t name_len = le(&h[28], 2), extra_len = le(&h[30], 2), comment_len = le(&h[32], 2);
    auto tail = bytes(pos + 46, name_len + extra_len);
    std::string name(tail.begin(), tail.begin() + static_cast<std::ptrdiff_t>(name_len));
    uint64_t size = le(&h[24], 4);
    if (size == 0xFFFFFFFF)  // in the ZIP64 extra field (id 1), whose first field is the uncompressed size
      for (size_t e = name_len; e + 4 <= tail.size();) {
        const uint64_t id = le(&tail[e], 2), len = le(&tail[e + 2], 2);
        if (id == 1 && len >= 8 && e + 12 <= tail.size()) size = le(&tail[e + 4], 8);
        e += 4 + len;
      }
    // Records are named "<archive>/<record>" in the zip, as PyTorchStreamReader strips the first folder.
    const size_t slash = name.find('/');
    sizes[slash == std::string::npos ? name : name.substr(slash + 1)] = size;
    pos += 46 + name_len + extra_len + comment_len;
  }
  return sizes;
}

// Each tensor record's data offset, with its name and size.
std::map<uint64_t, std::pair<std::string, size_t>> tensor_records(caffe2::serialize::PyTorchStreamReader& reader,
                                                                  const std::string& path) {
  const auto sizes = record_sizes(caffe2::serialize::FileAdapter(path), path);
  std::map<uint64_t, std::pair<std::string, size_t>> out;
  for (const std::string& name : reader.getAllRecords()) {
    auto it = sizes.find(name);
    if (name.rfind("data/", 0) == 0 && it != sizes.end() && it->second > 0)
      out[reader.getRecordOffset(name)] = {name, static_cast<size_t>(it->second)};
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
    throw FieldError("ema_memory", "this LibTorch reads '" + path + "' in a way that cannot be streamed; raise "
                                   "ema_memory above the file's size to load it whole");
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

}  // namespace autoguide
