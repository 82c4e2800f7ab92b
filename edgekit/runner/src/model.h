// A compiled Relax VM model loaded with the TVM runtime, and the tensors it takes and gives.
#ifndef EDGEKIT_RUNNER_MODEL_H_
#define EDGEKIT_RUNNER_MODEL_H_

#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>

#include <string>
#include <utility>
#include <vector>

#include "npy.h"

namespace edgekit {

class Model {
 public:
  // dlopen the library, create its VM on CPU 0 with the pooled allocator. Throws RuntimeFailure.
  static Model load(const std::string& library_path);

  // One inference of `main`; returns its outputs, a tuple flattened into a list.
  std::vector<tvm::ffi::Tensor> run(const std::vector<tvm::ffi::Tensor>& inputs) const;

 private:
  Model(tvm::ffi::Module library, tvm::ffi::Module vm, tvm::ffi::Function main)
      : library_(std::move(library)), vm_(std::move(vm)), main_(std::move(main)) {}

  tvm::ffi::Module library_;  // keeps the dlopen'ed code alive as long as the VM
  tvm::ffi::Module vm_;
  tvm::ffi::Function main_;
};

// A CPU tensor (64-byte aligned, as TVM's allocator makes them) holding a copy of `array`.
tvm::ffi::Tensor to_tensor(const NpyArray& array);

// A host copy of a CPU tensor. Throws RuntimeFailure for other devices or unsupported dtypes.
NpyArray to_host(const tvm::ffi::Tensor& tensor);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_MODEL_H_
