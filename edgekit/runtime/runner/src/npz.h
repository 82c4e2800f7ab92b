// Writing .npz files: a zip archive of .npy members, stored (no compression) like numpy.savez.
#ifndef EDGEKIT_RUNNER_NPZ_H_
#define EDGEKIT_RUNNER_NPZ_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace edgekit {

// CRC-32 (IEEE 802.3, as zip uses it), continuing from `crc` (0 to start).
uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc = 0);

// The bytes of a zip archive holding each (name, .npy bytes) member as "name.npy".
// Throws InputError if a member or the archive needs zip64 (over 4 GiB) or a name is too long.
std::string encode_npz(const std::vector<std::pair<std::string, std::string>>& members);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_NPZ_H_
