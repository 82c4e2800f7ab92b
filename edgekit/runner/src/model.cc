#include "model.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "error.h"

namespace edgekit {
namespace {

namespace ffi = tvm::ffi;

constexpr int kCpuDeviceType = 1;    // kDLCPU
constexpr int kPooledAllocator = 2;  // relax VM allocator types: 1 naive, 2 pooled
constexpr size_t kAlignment = 64;    // TVM's kAllocAlignment

struct AlignedAlloc {
  void AllocData(DLTensor* tensor) {
    size_t bytes = std::max<size_t>(ffi::GetDataSize(*tensor), 1);
    tensor->data = nullptr;
    if (posix_memalign(&tensor->data, kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment) != 0) {
      throw std::bad_alloc();
    }
  }
  void FreeData(DLTensor* tensor) { std::free(tensor->data); }
};

DLDataType dl_type(const DType& dtype) {
  uint8_t code = dtype.kind == 'f' ? kDLFloat : dtype.kind == 'i' ? kDLInt : dtype.kind == 'u' ? kDLUInt : kDLBool;
  return DLDataType{code, static_cast<uint8_t>(dtype.itemsize * 8), 1};
}

const DType* host_type(DLDataType type) {
  if (type.lanes != 1) return nullptr;
  char kind = type.code == kDLFloat ? 'f' : type.code == kDLInt ? 'i' : type.code == kDLUInt ? 'u' : type.code == kDLBool ? 'b' : '?';
  return dtype_by_kind(kind, type.bits);
}

ffi::Function require_function(const ffi::Module& module, const char* name, const std::string& library_path) {
  ffi::Optional<ffi::Function> function = module->GetFunction(name, true);
  if (!function) throw RuntimeFailure(library_path + " has no function '" + name + "': not a Relax VM executable");
  return *function;
}

}  // namespace

Model Model::load(const std::string& library_path) {
  ffi::Module library = ffi::Module::LoadFromFile(ffi::String(library_path));
  ffi::Module vm = require_function(library, "vm_load_executable", library_path)().cast<ffi::Module>();
  // One (device type, device id, allocator) triple per device; the host CPU is the only one.
  require_function(vm, "vm_initialization", library_path)(kCpuDeviceType, 0, kPooledAllocator);
  ffi::Function main = require_function(vm, "main", library_path);
  return Model(std::move(library), std::move(vm), std::move(main));
}

std::vector<ffi::Tensor> Model::run(const std::vector<ffi::Tensor>& inputs) const {
  std::vector<ffi::AnyView> args(inputs.begin(), inputs.end());
  ffi::Any result;
  main_.CallPacked(args.data(), static_cast<int32_t>(args.size()), &result);
  if (auto tensor = result.as<ffi::Tensor>()) return {*tensor};
  auto tuple = result.as<ffi::Array<ffi::Any>>();
  if (!tuple) throw RuntimeFailure("main returned a " + result.GetTypeKey() + ", not tensors");
  std::vector<ffi::Tensor> outputs;
  for (const ffi::Any& item : *tuple) {
    auto tensor = item.as<ffi::Tensor>();
    if (!tensor) throw RuntimeFailure("main returned a tuple holding a " + item.GetTypeKey() + ", not only tensors");
    outputs.push_back(*tensor);
  }
  return outputs;
}

ffi::Tensor to_tensor(const NpyArray& array) {
  ffi::Tensor tensor = ffi::Tensor::FromNDAlloc(AlignedAlloc(), ffi::ShapeView(array.shape.data(), array.shape.size()),
                                                dl_type(*array.dtype), DLDevice{kDLCPU, 0});
  std::memcpy(tensor.data_ptr(), array.data.data(), array.data.size());
  return tensor;
}

NpyArray to_host(const ffi::Tensor& tensor) {
  const DLTensor* dl = tensor.GetDLTensorPtr();
  if (dl->device.device_type != kDLCPU) throw RuntimeFailure("an output is not on the CPU");
  if (!tensor.IsContiguous()) throw RuntimeFailure("an output is not contiguous");
  NpyArray array;
  array.dtype = host_type(dl->dtype);
  if (array.dtype == nullptr) throw RuntimeFailure("an output has a dtype numpy cannot hold (code " + std::to_string(dl->dtype.code) + ")");
  array.shape.assign(dl->shape, dl->shape + dl->ndim);
  const uint8_t* data = static_cast<const uint8_t*>(dl->data) + dl->byte_offset;
  array.data.assign(data, data + ffi::GetDataSize(*dl));
  return array;
}

}  // namespace edgekit
