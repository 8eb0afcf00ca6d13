#include "autoguide/npy.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>

#include "autoguide/atomic_file.hpp"
#include "autoguide/error.hpp"

namespace autoguide {

namespace {

struct DtypeCode {
  torch::ScalarType type;
  const char* descr;
};
const DtypeCode kCodes[] = {{torch::kFloat32, "<f4"}, {torch::kFloat64, "<f8"}, {torch::kInt64, "<i8"}, {torch::kUInt8, "|u1"}};

}  // namespace

std::string encode_npy(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  const char* descr = nullptr;
  for (const auto& code : kCodes)
    if (code.type == c.scalar_type()) descr = code.descr;
  TORCH_CHECK(descr != nullptr, "encode_npy: unsupported dtype");
  std::string shape;
  for (int64_t d : c.sizes()) shape += std::to_string(d) + ", ";
  if (c.dim() == 1) shape.pop_back();
  else if (c.dim() > 1) shape.erase(shape.size() - 2);
  std::string header = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(static_cast<const char*>(c.data_ptr()), c.nbytes());
  return out;
}

void write_npy(const std::string& path, const torch::Tensor& t) { write_file_atomic(path, encode_npy(t)); }

namespace {

std::string read_prefix(const std::string& path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read '" + path + "'");
  std::string bytes(n, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(n));
  bytes.resize(static_cast<size_t>(in.gcount()));
  return bytes;
}

// `bytes` must hold at least the whole header; the data may follow or not.
NpyHeader parse_header(const std::string& bytes, const std::string& name) {
  auto bad = [&](const std::string& why) { return UsageError("'" + name + "' is not a usable .npy file: " + why); };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw bad("missing magic");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t hlen = 0, hstart = 0;
  if (major == 1) {
    hlen = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw bad("truncated header");
    for (int i = 0; i < 4; ++i) hlen |= size_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    hstart = 12;
  } else {
    throw bad("unsupported version");
  }
  if (bytes.size() < hstart + hlen) throw bad("truncated header");
  const std::string header = bytes.substr(hstart, hlen);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex(R"('descr':\s*'([^']+)')"))) throw bad("no dtype");
  const std::string descr = m[1].str();
  if (std::regex_search(header, std::regex(R"('fortran_order':\s*True)"))) throw bad("Fortran order is not supported");
  if (!std::regex_search(header, m, std::regex(R"('shape':\s*\(([^)]*)\))"))) throw bad("no shape");
  NpyHeader h;
  const std::string dims = m[1].str();
  const std::regex number(R"(\d+)");
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it)
    h.shape.push_back(std::stoll(it->str()));
  bool found = false;
  for (const auto& code : kCodes)
    if (descr == code.descr || (descr == "<u1" && code.type == torch::kUInt8)) {
      h.dtype = code.type;
      found = true;
    }
  if (!found) throw bad("dtype " + descr + " is not supported (use float32)");
  h.data_offset = hstart + hlen;
  return h;
}

size_t data_bytes(const NpyHeader& h) {
  size_t n = c10::elementSize(h.dtype);
  for (int64_t d : h.shape) n *= static_cast<size_t>(d);
  return n;
}

}  // namespace

torch::Tensor decode_npy(const std::string& bytes, const std::string& name) {
  const NpyHeader h = parse_header(bytes, name);
  // Checked before allocating, so a corrupt shape cannot ask for absurd memory.
  if (bytes.size() - h.data_offset != data_bytes(h))
    throw UsageError("'" + name + "' is not a usable .npy file: data size does not match the shape (truncated?)");
  auto t = torch::empty(h.shape, torch::TensorOptions().dtype(h.dtype));
  std::memcpy(t.data_ptr(), bytes.data() + h.data_offset, t.nbytes());
  return t;
}

torch::Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read '" + path + "'");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return decode_npy(bytes, path);
}

NpyHeader read_npy_header(const std::string& path) {
  // Headers are small (version 1 caps them at 64 KiB); 1 MiB covers any sane version 2/3 header too.
  const NpyHeader h = parse_header(read_prefix(path, size_t(1) << 20), path);
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size != h.data_offset + data_bytes(h))
    throw UsageError("'" + path + "' is not a usable .npy file: data size does not match the shape (truncated?)");
  return h;
}

}  // namespace autoguide
