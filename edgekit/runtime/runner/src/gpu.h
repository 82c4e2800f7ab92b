// GPU artifacts: the TVM device runtime, and the vendor libraries under it, loaded into the
// process before model.so, whose packed kernels can only be unpacked once it is there.
#ifndef EDGEKIT_RUNNER_GPU_H_
#define EDGEKIT_RUNNER_GPU_H_

#include "manifest.h"
#include "model.h"

namespace edgekit {

// Load what `gpu.device` needs (CUDA: libcudart.so.N and libcuda.so.1 from the system, then
// libtvm_runtime_cuda.so from the runner's folder; OpenCL: a TVM runtime built with OpenCL and
// the system's libOpenCL) and check that the device exists. `spin`: let CUDA spin-wait in
// synchronize (its default); otherwise the waiting thread sleeps, as idle TVM workers do.
// Returns where the VM runs. Throws InputError (exit 2) for a device this runner does not know
// or a library that is missing, RuntimeFailure (exit 1) when the device itself is absent.
Placement load_gpu_runtime(const GpuRuntime& gpu, bool spin);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_GPU_H_
