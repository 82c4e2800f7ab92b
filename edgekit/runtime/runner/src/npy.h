// Reading and writing numpy .npy files (format versions 1.0, 2.0 and 3.0).
//
// The reader takes untrusted bytes: it bounds-checks every length, parses the header dict
// strictly (exactly 'descr', 'fortran_order' and 'shape'), rejects shapes whose byte size
// overflows, and requires the data to be exactly as long as the header says.
#ifndef EDGEKIT_RUNNER_NPY_H_
#define EDGEKIT_RUNNER_NPY_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dtype.h"

namespace edgekit {

struct NpyHeader {
  const DType* dtype = nullptr;
  std::vector<int64_t> shape;
  size_t data_offset = 0;  // where the data starts in the file
  size_t data_bytes = 0;   // product(shape) * itemsize, checked not to overflow
};

struct NpyArray {
  const DType* dtype = nullptr;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

// Largest header accepted (numpy itself refuses headers over 10000 bytes by default).
constexpr size_t kMaxNpyHeaderBytes = 1 << 16;

// Parse the header from the first `size` bytes of a file (which need not include the data).
// Throws InputError describing the first problem found.
NpyHeader parse_npy_header(const uint8_t* bytes, size_t size);

// Parse a whole .npy file held in memory. Throws InputError.
NpyArray parse_npy(const uint8_t* bytes, size_t size);

// Read a .npy file; errors name the path. Throws InputError.
NpyArray read_npy(const std::string& path);

// The bytes of a version 1.0 .npy file holding `data` (C order).
std::string encode_npy(const DType& dtype, const std::vector<int64_t>& shape, const void* data,
                       size_t data_bytes);

// "1x1x32x32 float32": how errors and reports show a tensor.
std::string describe_tensor(const std::vector<int64_t>& shape, const std::string& dtype);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_NPY_H_
