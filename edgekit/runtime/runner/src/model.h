// A compiled Relax VM model loaded with the TVM runtime, and the tensors it takes and gives.
#ifndef EDGEKIT_RUNNER_MODEL_H_
#define EDGEKIT_RUNNER_MODEL_H_

#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "npy.h"

namespace edgekit {

// Where a model runs: the Relax VM's devices in vm_initialization order. The first one holds the
// weights, the inputs and the outputs (src/runtime/vm/vm.cc: Init copies the constants to
// devices[0], and `main` called directly does not move its arguments). A GPU model lists its
// GPU first and the host CPU last.
struct Placement {
  std::vector<DLDevice> vm_devices{DLDevice{kDLCPU, 0}};
  DLDevice device() const { return vm_devices.front(); }
};

class Model {
 public:
  // dlopen the library, create its VM on `placement`'s devices, each with the pooled allocator.
  // A GPU's TVM runtime must be loaded already (gpu.h). Throws RuntimeFailure.
  static Model load(const std::string& library_path, const Placement& placement = Placement());

  // One inference of `main`; returns its outputs, a tuple flattened into a list. On a GPU it
  // returns once the device has finished, so the time it takes is the inference's.
  std::vector<tvm::ffi::Tensor> run(const std::vector<tvm::ffi::Tensor>& inputs) const;

  // A copy of `array` on the model's device, made before any timing.
  tvm::ffi::Tensor upload(const NpyArray& array) const;

 private:
  Model(tvm::ffi::Module library, tvm::ffi::Module vm, tvm::ffi::Function main, DLDevice device)
      : library_(std::move(library)), vm_(std::move(vm)), main_(std::move(main)), device_(device) {}

  tvm::ffi::Module library_;  // keeps the dlopen'ed code alive as long as the VM
  tvm::ffi::Module vm_;
  tvm::ffi::Function main_;
  DLDevice device_;
  std::optional<tvm::ffi::Function> stream_sync_;  // runtime.Device_StreamSync, for a GPU
};

// A CPU tensor (64-byte aligned, as TVM's allocator makes them) holding a copy of `array`.
tvm::ffi::Tensor to_tensor(const NpyArray& array);

// A host copy of a tensor on any device (a GPU's is copied back through its device API).
// Throws RuntimeFailure for unsupported dtypes.
NpyArray to_host(const tvm::ffi::Tensor& tensor);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_MODEL_H_
