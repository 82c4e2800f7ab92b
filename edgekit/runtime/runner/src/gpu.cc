// How TVM 0.27 finds a GPU (read in apache/tvm):
// - Each GPU backend is its own library: libtvm_runtime_cuda.so (src/backend/cuda/runtime), and
//   libtvm_runtime_opencl.so with USE_OPENCL (cmake/modules/OpenCL.cmake). Loading it registers
//   the device API ("device_api.cuda", found by DeviceAPIManager in src/runtime/device_api.cc)
//   and the loader of packed kernels ("ffi.Module.load_from_bytes.cuda", cuda_module.cc).
//   model.so's import blob is unpacked when model.so is loaded, so the backend must come first,
//   RTLD_GLOBAL, with the vendor libraries it links against already loadable.
// - The PyPI wheels ship libtvm_runtime_cuda.so (NEEDED libcudart.so.13, libcuda.so.1) but no
//   OpenCL backend at all.
#include "gpu.h"

#include <dlfcn.h>
#include <tvm/ffi/function.h>

#include <string>

#include "error.h"
#include "files.h"

namespace edgekit {
namespace {

namespace ffi = tvm::ffi;

constexpr int kDeviceExists = 0;                        // DeviceAttrKind kExist (tvm/runtime/device_api.h)
constexpr unsigned kCudaDeviceScheduleBlockingSync = 4;  // cudaDeviceScheduleBlockingSync (driver_types.h)

void* load_library(const std::string& name, const std::string& needed_for) {
  void* handle = dlopen(name.c_str(), RTLD_NOW | RTLD_GLOBAL);  // never closed: lives as long as the process
  if (handle == nullptr) {
    const char* reason = dlerror();
    throw InputError("cannot load " + name + " (" + (reason ? reason : "unknown reason") + "): " + needed_for);
  }
  return handle;
}

// A library that must sit beside edgekit-runner (the bundle carries the TVM runtime there).
void load_beside_runner(const std::string& name, const std::string& how_to_get_it) {
  std::string path = join_path(executable_folder(), name);
  if (!is_file(path)) throw InputError("no " + name + " beside edgekit-runner in " + executable_folder() + ": " + how_to_get_it);
  load_library(path, how_to_get_it);
}

template <typename Function>
Function cuda_symbol(void* cudart, const char* name) {
  void* symbol = dlsym(cudart, name);
  if (symbol == nullptr) throw InputError(std::string("the loaded libcudart has no ") + name + ": not a CUDA runtime");
  return reinterpret_cast<Function>(symbol);
}

// CUDA runtime calls the runner makes itself, through the libcudart it loaded (no CUDA headers
// at build time): device count with the driver's own error text, and the sync policy.
void prepare_cuda(void* cudart, int device_id, bool spin) {
  using GetDeviceCount = int (*)(int*);
  using GetErrorString = const char* (*)(int);
  using SetDevice = int (*)(int);
  using SetDeviceFlags = int (*)(unsigned);
  int count = 0;
  int status = cuda_symbol<GetDeviceCount>(cudart, "cudaGetDeviceCount")(&count);
  if (status != 0) {
    throw RuntimeFailure(std::string("no usable CUDA device: cudaGetDeviceCount failed (") +
                         cuda_symbol<GetErrorString>(cudart, "cudaGetErrorString")(status) +
                         "); check the NVIDIA driver and that its CUDA version is at least the runtime's");
  }
  if (device_id >= count) {
    throw RuntimeFailure("the model runs on cuda:" + std::to_string(device_id) + " but CUDA finds " + std::to_string(count) + " devices");
  }
  if (spin) return;
  // With fewer CUDA contexts than cores, CUDA spin-waits in cudaStreamSynchronize: a busy core
  // per waiting thread, which --rate mode would report as CPU time. Sleep instead, as idle TVM
  // workers do without --spin. Set before TVM's first allocation makes the context (device 0
  // is current until someone sets another); a failure only costs that CPU time, so it is not
  // an error.
  if (device_id != 0 && cuda_symbol<SetDevice>(cudart, "cudaSetDevice")(device_id) != 0) return;
  cuda_symbol<SetDeviceFlags>(cudart, "cudaSetDeviceFlags")(kCudaDeviceScheduleBlockingSync);
}

void load_cuda(const GpuRuntime& gpu, bool spin) {
  if (gpu.cuda_major < 1) throw InputError("the manifest's runtime.gpu.runtime names no cuda_major; rebuild the artifact with `edgekit compile`");
  std::string major = std::to_string(gpu.cuda_major);
  // The vendor libraries first, so a board without them gets their names rather than the
  // first NEEDED entry dlopen happens to miss.
  void* cudart = load_library("libcudart.so." + major, "this CUDA model needs the CUDA " + major +
                                                           " runtime (JetPack's CUDA toolkit) where the dynamic linker finds it (ldconfig or LD_LIBRARY_PATH)");
  load_library("libcuda.so.1", "this CUDA model needs the NVIDIA driver's libcuda.so.1, for CUDA " + major + " or newer");
  prepare_cuda(cudart, gpu.vm_devices.front().second, spin);
  load_beside_runner("libtvm_runtime_cuda.so", "rebuild the bundle with `edgekit bundle`, which ships TVM's CUDA runtime");
}

void load_opencl(const GpuRuntime& gpu, bool spin) {
  // A runtime built on the board may be one library with OpenCL inside, or split out.
  std::string split = join_path(executable_folder(), "libtvm_runtime_opencl.so");
  if (is_file(split)) load_library(split, "the OpenCL backend of TVM's runtime");
  if (!ffi::Function::GetGlobal("device_api.opencl") || !ffi::Function::GetGlobal("ffi.Module.load_from_bytes.opencl")) {
    throw InputError(
        "this TVM runtime has no OpenCL backend (device_api.opencl is not registered; the PyPI runtimes have none): build TVM 0.27 on "
        "the board with USE_OPENCL=ON and put its libtvm_runtime_opencl.so, libtvm_runtime.so and libtvm_ffi.so beside edgekit-runner");
  }
  // A runtime linked against an OpenCL library (USE_OPENCL=/path) has it loaded already. With
  // USE_OPENCL=ON, TVM's wrapper (opencl_wrapper.cc) dlopens "libOpenCL.so", without the .1,
  // on first use: check that name now rather than fail in the middle of loading the model.
  if (dlopen("libOpenCL.so.1", RTLD_NOW | RTLD_NOLOAD) == nullptr) {
    load_library("libOpenCL.so", "TVM's OpenCL backend opens libOpenCL.so: install the board's OpenCL ICD loader and GPU driver "
                                 "(a libOpenCL.so.1 alone needs a libOpenCL.so link to it)");
  }
}

struct GpuBackend {
  const char* device;  // runtime.gpu.device
  int device_type;     // DLDeviceType that vm_initialization must list first
  void (*load)(const GpuRuntime& gpu, bool spin);
};

constexpr GpuBackend kBackends[] = {
    {"cuda", kDLCUDA, load_cuda},
    {"opencl", kDLOpenCL, load_opencl},
};

const GpuBackend& find_backend(const GpuRuntime& gpu) {
  for (const GpuBackend& backend : kBackends) {
    if (gpu.device != backend.device) continue;
    if (gpu.vm_devices.front().first != backend.device_type || gpu.vm_devices.back().first != kDLCPU) {
      throw InputError("the manifest's runtime.gpu.runtime.vm_initialization must list the " + gpu.device +
                       " device first and the CPU last; rebuild the artifact with `edgekit compile`");
    }
    return backend;
  }
  throw InputError("the artifact runs on a '" + gpu.device + "' GPU, which this runner does not support (cuda, opencl)");
}

}  // namespace

Placement load_gpu_runtime(const GpuRuntime& gpu, bool spin) {
  const GpuBackend& backend = find_backend(gpu);
  backend.load(gpu, spin);
  for (std::string name : {std::string("device_api.") + backend.device, std::string("ffi.Module.load_from_bytes.") + backend.device}) {
    if (!ffi::Function::GetGlobal(name)) throw InputError("the loaded TVM runtime does not register " + name + ": not TVM 0.27's " + backend.device + " runtime");
  }
  Placement placement;
  placement.vm_devices.clear();
  for (const auto& [type, id] : gpu.vm_devices) placement.vm_devices.push_back(DLDevice{static_cast<DLDeviceType>(type), id});
  DLDevice device = placement.device();
  // Asks the device API (CUDA: cudaGetDeviceCount; OpenCL: the platform's devices).
  int64_t exists = ffi::Function::GetGlobalRequired("runtime.GetDeviceAttr")(static_cast<int>(device.device_type), device.device_id, kDeviceExists).cast<int64_t>();
  if (!exists) throw RuntimeFailure("no " + gpu.device + ":" + std::to_string(device.device_id) + " device on this machine");
  return placement;
}

}  // namespace edgekit
