// libFuzzer target for the runner's .npy reader (scripts/fuzz_runner.sh builds and runs it).
//
// Any input must either parse or raise InputError: no crash, leak, overflow or undefined
// behaviour (ASan + UBSan). A parsed array must survive a write/read round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "error.h"
#include "npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  edgekit::NpyArray array;
  try {
    array = edgekit::parse_npy(data, size);
  } catch (const edgekit::InputError&) {
    return 0;
  }
  std::string encoded = edgekit::encode_npy(*array.dtype, array.shape, array.data.data(), array.data.size());
  edgekit::NpyArray again = edgekit::parse_npy(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size());
  if (again.dtype != array.dtype || again.shape != array.shape || again.data != array.data) std::abort();
  return 0;
}
