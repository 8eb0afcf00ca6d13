#include "npz.hpp"

#include <zlib.h>

#include <fstream>
#include <iterator>
#include <limits>
#include <vector>

#include "atomic_file.hpp"
#include "crc32.hpp"
#include "autoguide/error.hpp"
#include "npy.hpp"

namespace autoguide {

namespace {

// ZIP (APPNOTE 6.3) record signatures.
constexpr uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50, kEndOfCentralDir = 0x06054b50;
// 1980-01-01 00:00 in MS-DOS form: a fixed stamp keeps the archive a pure function of its arrays.
constexpr uint16_t kDosTime = 0, kDosDate = (0 << 9) | (1 << 5) | 1;

void put16(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
}
void put32(std::string& out, uint32_t v) {
  put16(out, v & 0xffff);
  put16(out, v >> 16);
}

uint32_t get(const std::string& b, size_t pos, int bytes) {
  uint32_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint32_t(static_cast<unsigned char>(b[pos + i])) << (8 * i);
  return v;
}

// A member larger than this, as the archive declares it, is refused before anything is allocated: a few bytes
// of deflate can claim gigabytes (a ZIP bomb). 1 GiB holds an 11,585 x 11,585 float64 covariance.
constexpr uint32_t kMaxMemberBytes = uint32_t(1) << 30;

// Raw deflate (ZIP method 8, what numpy.savez_compressed writes), expected to give exactly `size` bytes; false
// when the stream is damaged, truncated, or gives more or fewer. Output grows as data really inflates (never
// allocated from the declared size), and stops one chunk past it.
bool inflate_exactly(const std::string& in, size_t size, std::string& out) {
  out.clear();
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) return false;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  std::vector<char> chunk(1 << 16);
  int rc = Z_OK;
  while (rc == Z_OK && out.size() <= size) {  // Z_BUF_ERROR: the input ended before the stream did
    z.next_out = reinterpret_cast<Bytef*>(chunk.data());
    z.avail_out = static_cast<uInt>(chunk.size());
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(chunk.data(), chunk.size() - z.avail_out);
  }
  inflateEnd(&z);
  return rc == Z_STREAM_END && out.size() == size;
}

}  // namespace

std::string encode_npz(const NpzArrays& arrays) {
  std::string out, central;
  for (const auto& [name, tensor] : arrays) {
    const std::string file = name + ".npy";
    const std::string data = encode_npy(tensor);
    if (data.size() >= std::numeric_limits<uint32_t>::max() || out.size() >= std::numeric_limits<uint32_t>::max())
      throw RuntimeFailure("array '" + name + "' is too large for a ZIP without ZIP64");
    const uint32_t crc = crc32(reinterpret_cast<const unsigned char*>(data.data()), data.size());
    const auto offset = static_cast<uint32_t>(out.size());
    const auto size = static_cast<uint32_t>(data.size());
    // Fields shared by the local and the central header, from "version needed" to the name length.
    std::string common;
    put16(common, 20);  // version needed: 2.0
    put16(common, 0);   // flags
    put16(common, 0);   // method: stored
    put16(common, kDosTime);
    put16(common, kDosDate);
    put32(common, crc);
    put32(common, size);  // compressed
    put32(common, size);  // uncompressed
    put16(common, static_cast<uint32_t>(file.size()));
    put16(common, 0);  // extra field length

    put32(out, kLocalHeader);
    out += common + file + data;

    put32(central, kCentralHeader);
    put16(central, 20);  // version made by
    central += common;
    put16(central, 0);  // comment length
    put16(central, 0);  // disk number
    put16(central, 0);  // internal attributes
    put32(central, 0);  // external attributes
    put32(central, offset);
    central += file;
  }
  const auto cd_offset = static_cast<uint32_t>(out.size());
  out += central;
  put32(out, kEndOfCentralDir);
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<uint32_t>(arrays.size()));
  put16(out, static_cast<uint32_t>(arrays.size()));
  put32(out, static_cast<uint32_t>(central.size()));
  put32(out, cd_offset);
  put16(out, 0);  // comment length
  return out;
}

void write_npz(const std::string& path, const NpzArrays& arrays) { write_file_atomic(path, encode_npz(arrays)); }

std::map<std::string, torch::Tensor> read_npz(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read '" + path + "'");
  return decode_npz(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), path);
}

std::map<std::string, torch::Tensor> decode_npz(const std::string& b, const std::string& path) {
  auto bad = [&](const std::string& why) { return UsageError("'" + path + "' is not a usable .npz file: " + why); };

  // The end record sits in the last 22 bytes plus an optional comment of up to 64 KiB.
  if (b.size() < 22) throw bad("too short to be a ZIP archive");
  size_t eocd = std::string::npos;
  const size_t lowest = b.size() > 22 + 65535 ? b.size() - 22 - 65535 : 0;
  for (size_t pos = b.size() - 22 + 1; pos-- > lowest;)
    if (get(b, pos, 4) == kEndOfCentralDir) {
      eocd = pos;
      break;
    }
  if (eocd == std::string::npos) throw bad("no ZIP end record (truncated or not a ZIP)");
  const uint32_t count = get(b, eocd + 10, 2), cd_size = get(b, eocd + 12, 4), cd_offset = get(b, eocd + 16, 4);
  if (count == 0xffff || cd_offset == 0xffffffff) throw bad("ZIP64 archives are not supported");
  if (size_t(cd_offset) + cd_size > eocd) throw bad("central directory out of range (truncated?)");

  std::map<std::string, torch::Tensor> arrays;
  size_t pos = cd_offset;
  for (uint32_t i = 0; i < count; ++i) {
    if (pos + 46 > eocd || get(b, pos, 4) != kCentralHeader) throw bad("damaged central directory");
    const uint32_t flags = get(b, pos + 8, 2), method = get(b, pos + 10, 2), crc = get(b, pos + 16, 4);
    const uint32_t csize = get(b, pos + 20, 4), usize = get(b, pos + 24, 4);
    const uint32_t name_len = get(b, pos + 28, 2), extra_len = get(b, pos + 30, 2), comment_len = get(b, pos + 32, 2);
    const uint32_t local = get(b, pos + 42, 4);
    if (pos + 46 + name_len > eocd) throw bad("damaged central directory");
    const std::string name = b.substr(pos + 46, name_len);
    pos += 46 + name_len + extra_len + comment_len;
    if (flags & 1) throw bad("member '" + name + "' is encrypted");
    if (method != 0 && method != 8)
      throw bad("member '" + name + "' uses ZIP compression method " + std::to_string(method) +
                "; numpy writes stored (savez) or deflate (savez_compressed) members");
    if (csize == 0xffffffff || usize == 0xffffffff || local == 0xffffffff)
      throw bad("ZIP64 archives are not supported");
    if (method == 0 && csize != usize) throw bad("member '" + name + "' has inconsistent sizes");
    if (usize > kMaxMemberBytes)
      throw bad("member '" + name + "' declares " + std::to_string(usize) + " bytes, more than the 1 GiB allowed");
    if (size_t(local) + 30 > b.size() || get(b, local, 4) != kLocalHeader) throw bad("damaged entry '" + name + "'");
    // The local header's own extra field may differ from the central one (numpy adds ZIP64 extras there).
    const size_t start = local + 30 + get(b, local + 26, 2) + get(b, local + 28, 2);
    if (start + csize > b.size()) throw bad("entry '" + name + "' is truncated");
    std::string data = b.substr(start, csize);
    if (method == 8) {
      std::string inflated;
      if (!inflate_exactly(data, usize, inflated))
        throw bad("entry '" + name + "' does not inflate to its declared " + std::to_string(usize) +
                  " bytes (damaged file)");
      data = std::move(inflated);
    }
    if (crc32(reinterpret_cast<const unsigned char*>(data.data()), data.size()) != crc)
      throw bad("entry '" + name + "' fails its CRC check (damaged file)");
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0) continue;  // not an array
    arrays[name.substr(0, name.size() - 4)] = decode_npy(data, path + ":" + name);
  }
  return arrays;
}

}  // namespace autoguide
