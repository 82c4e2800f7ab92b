// The element types the runner accepts, by numpy name ("float32") and .npy descr ("<f4").
#ifndef EDGEKIT_RUNNER_DTYPE_H_
#define EDGEKIT_RUNNER_DTYPE_H_

#include <cstdint>
#include <string>

namespace edgekit {

struct DType {
  const char* name;   // numpy name, as manifests write it
  const char* descr;  // .npy descr written for it (little endian)
  char kind;          // 'f' float, 'i' signed, 'u' unsigned, 'b' bool
  int itemsize;       // bytes
};

// nullptr when the name is not a supported type.
const DType* dtype_by_name(const std::string& name);
// nullptr unless `descr` is a little-endian (or byte-order-free) scalar type we support.
const DType* dtype_by_descr(const std::string& descr);
// nullptr for kinds/sizes numpy cannot hold (bfloat16, vector lanes).
const DType* dtype_by_kind(char kind, int bits);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_DTYPE_H_
