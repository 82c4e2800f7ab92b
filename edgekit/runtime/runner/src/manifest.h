// The artifact manifest (edgekit/artifact.py writes it): what goes in and out, the runtime
// defaults, and the sha256 of every other file in the folder.
#ifndef EDGEKIT_RUNNER_MANIFEST_H_
#define EDGEKIT_RUNNER_MANIFEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace edgekit {

constexpr char kManifestName[] = "manifest.json";

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;  // numpy name, e.g. "float32"

  std::string describe() const;  // "image 1x1x32x32 float32"
};

// runtime.gpu of an artifact built with --device gpu (edgekit/compiler/gpu.py `gpu_summary`).
struct GpuRuntime {
  std::string device;                           // "cuda" | "opencl"
  std::vector<std::pair<int, int>> vm_devices;  // runtime.vm_initialization: (DLDeviceType, id), GPU first
  int64_t cuda_major = 0;                       // runtime.cuda_major: the libcudart.so.N the kernels need
};

struct Manifest {
  std::string name;
  std::string library;  // file name of the compiled model in the artifact folder
  std::string triple;   // target.cpu.triple
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  int64_t threads = 1;            // runtime.threads
  std::vector<int> cpu_ids;       // runtime.cpu_ids (empty: no pinning)
  int64_t spin_count = 0;         // runtime.spin_count
  std::optional<GpuRuntime> gpu;  // runtime.gpu; absent for a CPU artifact
  std::vector<std::pair<std::string, std::string>> files;  // file name -> sha256 hex
};

// Parse manifest.json text; `path` names the file in errors. Throws InputError.
Manifest parse_manifest(const std::string& text, const std::string& path);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_MANIFEST_H_
