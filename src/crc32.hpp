// CRC-32 (ISO-HDLC, as in zlib): shared by PNG chunks and ZIP entries.
#pragma once
#include <cstddef>
#include <cstdint>

namespace autoguide {

// `crc` continues an earlier checksum, so data may arrive in pieces.
uint32_t crc32(const unsigned char* data, size_t n, uint32_t crc = 0);

}  // namespace autoguide
