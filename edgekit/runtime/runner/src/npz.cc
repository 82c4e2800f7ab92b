#include "npz.h"

#include <limits>

#include "error.h"

namespace edgekit {
namespace {

constexpr uint16_t kVersion = 20;            // zip 2.0: plain stored members
constexpr uint16_t kUtf8Names = 1 << 11;     // general purpose flag: names are UTF-8
constexpr uint16_t kDosDate1980 = (0 << 9) | (1 << 5) | 1;  // 1980-01-01: reproducible archives

void put16(std::string& out, uint16_t value) {
  out += static_cast<char>(value & 0xff);
  out += static_cast<char>(value >> 8);
}

void put32(std::string& out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
}

// The fields shared by a local file header and a central directory entry.
void put_entry_fields(std::string& out, uint32_t crc, uint32_t size, uint16_t name_bytes) {
  put16(out, kVersion);      // version needed to extract
  put16(out, kUtf8Names);    // flags
  put16(out, 0);             // method: stored
  put16(out, 0);             // time
  put16(out, kDosDate1980);  // date
  put32(out, crc);
  put32(out, size);          // compressed size
  put32(out, size);          // uncompressed size
  put16(out, name_bytes);
  put16(out, 0);             // extra field length
}

uint32_t checked32(size_t value, const char* what) {
  if (value >= std::numeric_limits<uint32_t>::max()) {
    throw InputError(std::string(what) + " is over 4 GiB: zip64 .npz files are not supported, write .npy outputs");
  }
  return static_cast<uint32_t>(value);
}

}  // namespace

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc) {
  static const auto table = [] {
    std::vector<uint32_t> t(256);
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

std::string encode_npz(const std::vector<std::pair<std::string, std::string>>& members) {
  std::string archive, directory;
  for (const auto& [name, npy] : members) {
    std::string file_name = name + ".npy";
    if (file_name.size() > 0xffff) throw InputError("output name too long for a zip member: " + name);
    uint16_t name_bytes = static_cast<uint16_t>(file_name.size());
    uint32_t crc = crc32(reinterpret_cast<const uint8_t*>(npy.data()), npy.size());
    uint32_t size = checked32(npy.size(), ("output " + name).c_str());
    uint32_t offset = checked32(archive.size(), "the .npz archive");

    put32(archive, 0x04034b50);  // local file header
    put_entry_fields(archive, crc, size, name_bytes);
    archive += file_name;
    archive += npy;

    put32(directory, 0x02014b50);  // central directory entry
    put16(directory, kVersion);    // version made by
    put_entry_fields(directory, crc, size, name_bytes);
    put16(directory, 0);  // comment length
    put16(directory, 0);  // disk number
    put16(directory, 0);  // internal attributes
    put32(directory, 0);  // external attributes
    put32(directory, offset);
    directory += file_name;
  }
  if (members.size() > 0xffff) throw InputError("too many outputs for one .npz file");
  uint32_t directory_offset = checked32(archive.size(), "the .npz archive");
  uint32_t directory_size = checked32(directory.size(), "the .npz directory");
  archive += directory;
  put32(archive, 0x06054b50);  // end of central directory
  put16(archive, 0);           // this disk
  put16(archive, 0);           // disk with the directory
  put16(archive, static_cast<uint16_t>(members.size()));
  put16(archive, static_cast<uint16_t>(members.size()));
  put32(archive, directory_size);
  put32(archive, directory_offset);
  put16(archive, 0);  // comment length
  return archive;
}

}  // namespace edgekit
