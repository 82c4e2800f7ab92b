#include "model.h"

#include <tvm/ffi/extra/c_env_api.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "error.h"

namespace edgekit {
namespace {

namespace ffi = tvm::ffi;

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

// Tensors on a device go through TVM 0.27's DeviceAPI, which the tvm_ffi headers cannot reach:
// these globals of libtvm_runtime (src/runtime/tensor.cc, device_api.cc) do it for us.
ffi::Function runtime_global(const char* name) {
  std::optional<ffi::Function> function = ffi::Function::GetGlobal(name);
  if (!function) throw RuntimeFailure(std::string("the TVM runtime has no global function ") + name + ": not TVM 0.27's runtime");
  return *function;
}

// Kernels are queued on the device's current stream (cuda_module.cc launches on
// TVMFFIEnvGetStream; the runner never sets one, so it is the default stream). Wait for it:
// runtime.Device_StreamSync calls the device API's StreamSync (cudaStreamSynchronize).
void synchronize(const ffi::Function& stream_sync, DLDevice device) {
  void* stream = TVMFFIEnvGetStream(device.device_type, device.device_id);
  stream_sync(device, reinterpret_cast<int64_t>(stream));
}

}  // namespace

Model Model::load(const std::string& library_path, const Placement& placement) {
  ffi::Module library = ffi::Module::LoadFromFile(ffi::String(library_path));
  ffi::Module vm = require_function(library, "vm_load_executable", library_path)().cast<ffi::Module>();
  // One (device type, device id, allocator) triple per device, in the placement's order; a CPU
  // model has the host CPU only. The weights are copied to the first device here.
  std::vector<ffi::AnyView> triples;
  for (const DLDevice& device : placement.vm_devices) {
    triples.insert(triples.end(), {static_cast<int>(device.device_type), device.device_id, kPooledAllocator});
  }
  ffi::Any ignored;
  require_function(vm, "vm_initialization", library_path).CallPacked(triples.data(), static_cast<int32_t>(triples.size()), &ignored);
  ffi::Function main = require_function(vm, "main", library_path);
  Model model(std::move(library), std::move(vm), std::move(main), placement.device());
  if (model.device_.device_type != kDLCPU) model.stream_sync_ = runtime_global("runtime.Device_StreamSync");
  return model;
}

std::vector<ffi::Tensor> Model::run(const std::vector<ffi::Tensor>& inputs) const {
  std::vector<ffi::AnyView> args(inputs.begin(), inputs.end());
  ffi::Any result;
  main_.CallPacked(args.data(), static_cast<int32_t>(args.size()), &result);
  if (stream_sync_) synchronize(*stream_sync_, device_);
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

ffi::Tensor Model::upload(const NpyArray& array) const {
  if (device_.device_type == kDLCPU) return to_tensor(array);
  // runtime.TVMTensorAllocWithScope is Tensor::Empty: memory from the device API's
  // AllocDataSpace (cudaMalloc), given back to it when the tensor dies. TVMTensorCopyFromBytes
  // copies host -> device and synchronizes.
  ffi::Tensor tensor = runtime_global("runtime.TVMTensorAllocWithScope")(ffi::Shape(array.shape.begin(), array.shape.end()),
                                                                        dl_type(*array.dtype), device_, nullptr)
                           .cast<ffi::Tensor>();
  if (!array.data.empty()) {
    void* bytes = const_cast<uint8_t*>(array.data.data());
    runtime_global("runtime.TVMTensorCopyFromBytes")(tensor, bytes, static_cast<int64_t>(array.data.size()));
  }
  return tensor;
}

NpyArray to_host(const ffi::Tensor& tensor) {
  const DLTensor* dl = tensor.GetDLTensorPtr();
  if (!tensor.IsContiguous()) throw RuntimeFailure("an output is not contiguous");
  NpyArray array;
  array.dtype = host_type(dl->dtype);
  if (array.dtype == nullptr) throw RuntimeFailure("an output has a dtype numpy cannot hold (code " + std::to_string(dl->dtype.code) + ")");
  array.shape.assign(dl->shape, dl->shape + dl->ndim);
  size_t size = ffi::GetDataSize(*dl);
  if (dl->device.device_type == kDLCPU) {
    const uint8_t* data = static_cast<const uint8_t*>(dl->data) + dl->byte_offset;
    array.data.assign(data, data + size);
  } else if (size > 0) {
    // Tensor::CopyToBytes: the device API copies device -> host (honouring byte_offset), then syncs.
    array.data.resize(size);
    runtime_global("runtime.TVMTensorCopyToBytes")(tensor, static_cast<void*>(array.data.data()), static_cast<int64_t>(size));
  }
  return array;
}

}  // namespace edgekit
