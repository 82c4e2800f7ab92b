// SHA-256 (FIPS 180-4), to check artifact files against their manifest before loading them.
#ifndef EDGEKIT_RUNNER_SHA256_H_
#define EDGEKIT_RUNNER_SHA256_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace edgekit {

class Sha256 {
 public:
  Sha256();
  void update(const uint8_t* data, size_t size);
  std::string hex_digest();  // finishes the hash; call once

 private:
  void compress(const uint8_t* block);
  uint32_t state_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

// Lowercase hex sha256 of a file's contents. Throws InputError if it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_SHA256_H_
