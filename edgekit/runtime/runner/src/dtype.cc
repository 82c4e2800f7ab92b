#include "dtype.h"

namespace edgekit {
namespace {

constexpr DType kTypes[] = {
    {"float32", "<f4", 'f', 4}, {"float16", "<f2", 'f', 2}, {"float64", "<f8", 'f', 8},
    {"int8", "|i1", 'i', 1},    {"int16", "<i2", 'i', 2},   {"int32", "<i4", 'i', 4},
    {"int64", "<i8", 'i', 8},   {"uint8", "|u1", 'u', 1},   {"uint16", "<u2", 'u', 2},
    {"uint32", "<u4", 'u', 4},  {"uint64", "<u8", 'u', 8},  {"bool", "|b1", 'b', 1},
};

}  // namespace

const DType* dtype_by_name(const std::string& name) {
  for (const DType& type : kTypes) {
    if (name == type.name) return &type;
  }
  return nullptr;
}

const DType* dtype_by_descr(const std::string& descr) {
  // numpy writes '|' for one-byte types and '<' for little-endian ones; '<' on a one-byte type
  // is equally unambiguous. Big-endian ('>') data would need byte swapping: not supported.
  if (descr.size() < 3 || (descr[0] != '<' && descr[0] != '|')) return nullptr;
  for (const DType& type : kTypes) {
    if (descr.compare(1, std::string::npos, type.descr + 1) != 0) continue;
    if (descr[0] == '|' && type.itemsize != 1) return nullptr;
    return &type;
  }
  return nullptr;
}

const DType* dtype_by_kind(char kind, int bits) {
  for (const DType& type : kTypes) {
    if (type.kind == kind && type.itemsize * 8 == bits) return &type;
  }
  return nullptr;
}

}  // namespace edgekit
