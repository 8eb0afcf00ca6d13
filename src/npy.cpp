#include "npy.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "atomic_file.hpp"
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

// Where the value of 'key' starts in the header dict (spaces skipped), or npos. The header is a Python dict
// literal; it is scanned by hand because std::regex recurses per character and a long header would overflow
// the stack.
size_t value_of(const std::string& header, const std::string& key) {
  size_t pos = header.find("'" + key + "':");
  if (pos == std::string::npos) return pos;
  pos += key.size() + 3;
  while (pos < header.size() && (header[pos] == ' ' || header[pos] == '\t')) ++pos;
  return pos;
}

UsageError unusable(const std::string& name, const std::string& why) {
  return UsageError("'" + name + "' is not a usable .npy file: " + why);
}

std::string strip_spaces(const std::string& s) {
  const auto a = s.find_first_not_of(' '), b = s.find_last_not_of(' ');
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// "(2, 3, 4)", "(5,)" or "()"; numpy before Python 3 wrote longs as "2L".
std::vector<int64_t> parse_shape(const std::string& header, size_t pos, const std::string& name) {
  const size_t close = pos < header.size() && header[pos] == '(' ? header.find(')', pos) : std::string::npos;
  if (close == std::string::npos) throw unusable(name, "no shape");
  const std::string inside = strip_spaces(header.substr(pos + 1, close - pos - 1));
  std::vector<int64_t> shape;
  for (size_t start = 0; start <= inside.size();) {
    const size_t comma = std::min(inside.find(',', start), inside.size());
    std::string token = strip_spaces(inside.substr(start, comma - start));
    if (!token.empty() && token.back() == 'L') token.pop_back();
    if (token.empty() && comma == inside.size() && (!shape.empty() || inside.empty())) break;  // "(5,)", "()"
    if (token.empty() || token.find_first_not_of("0123456789") != std::string::npos)
      throw unusable(name, "malformed shape");
    if (token.size() > 18 || shape.size() >= 32) throw unusable(name, "shape too large");
    shape.push_back(std::stoll(token));
    start = comma + 1;
  }
  return shape;
}

}  // namespace

NpyHeader parse_npy_header(const std::string& bytes, const std::string& name) {
  auto bad = [&](const std::string& why) { return unusable(name, why); };
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
  if (bytes.size() - hstart < hlen) throw bad("truncated header");
  const std::string header = bytes.substr(hstart, hlen);
  const size_t d = value_of(header, "descr");
  const size_t d_end = d == std::string::npos || d >= header.size() || header[d] != '\'' ? std::string::npos
                                                                                          : header.find('\'', d + 1);
  if (d_end == std::string::npos) throw bad("no dtype");
  const std::string descr = header.substr(d + 1, d_end - d - 1);
  const size_t f = value_of(header, "fortran_order");
  if (f != std::string::npos && header.compare(f, 4, "True") == 0) throw bad("Fortran order is not supported");
  NpyHeader h;
  h.shape = parse_shape(header, value_of(header, "shape"), name);
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

namespace {

// The bytes the header announces; nullopt when that overflows (no file could hold it).
std::optional<size_t> data_bytes(const NpyHeader& h) {
  size_t n = c10::elementSize(h.dtype);
  for (int64_t d : h.shape)
    if (__builtin_mul_overflow(n, static_cast<size_t>(d), &n)) return std::nullopt;
  return n;
}

}  // namespace

torch::Tensor decode_npy(const std::string& bytes, const std::string& name) {
  const NpyHeader h = parse_npy_header(bytes, name);
  // Checked before allocating, so a corrupt shape cannot ask for absurd memory.
  if (data_bytes(h) != bytes.size() - h.data_offset)
    throw UsageError("'" + name + "' is not a usable .npy file: data size does not match the shape (truncated?)");
  auto t = torch::empty(h.shape, torch::TensorOptions().dtype(h.dtype));
  // An empty array has no data pointer, and memcpy from or to null is undefined even for 0 bytes (UBSan).
  if (t.nbytes() > 0) std::memcpy(t.data_ptr(), bytes.data() + h.data_offset, t.nbytes());
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
  const NpyHeader h = parse_npy_header(read_prefix(path, size_t(1) << 20), path);
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size < h.data_offset || data_bytes(h) != size - h.data_offset)
    throw UsageError("'" + path + "' is not a usable .npy file: data size does not match the shape (truncated?)");
  return h;
}

}  // namespace autoguide
