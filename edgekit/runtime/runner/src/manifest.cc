#include "manifest.h"

#include <tvm/ffi/extra/json.h>

#include "dtype.h"
#include "error.h"
#include "npy.h"

namespace edgekit {
namespace {

namespace json = tvm::ffi::json;
using tvm::ffi::Any;
using tvm::ffi::String;

constexpr char kFormat[] = "edgekit-artifact";
constexpr int64_t kFormatVersion = 1;
constexpr int kMaxNesting = 32;

// Typed access to the parsed JSON whose every error names the file and the key.
class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw InputError(path_ + ": '" + key + "' " + problem + "; rebuild the artifact with `edgekit compile`");
  }

  json::Object object(const Any& value, const std::string& key) const {
    auto object = value.as<json::Object>();
    if (!object) fail(key, "must be an object");
    return *object;
  }

  Any field(const json::Object& object, const std::string& key, const std::string& where) const {
    auto value = object.Get(Any(String(key)));
    if (!value) fail(where + key, "is missing");
    return *value;
  }

  std::string string(const json::Object& object, const std::string& key, const std::string& where = "") const {
    auto value = field(object, key, where).as<String>();
    if (!value) fail(where + key, "must be a string");
    return std::string(*value);
  }

  int64_t integer(const Any& value, const std::string& key) const {
    auto number = value.as<int64_t>();
    if (!number) fail(key, "must be an integer");
    return *number;
  }

  json::Array array(const Any& value, const std::string& key) const {
    auto array = value.as<json::Array>();
    if (!array) fail(key, "must be a list");
    return *array;
  }

  TensorSpec tensor(const Any& value, const std::string& key) const {
    json::Object object = this->object(value, key);
    TensorSpec spec{string(object, "name", key + "."), {}, string(object, "dtype", key + ".")};
    for (const Any& dim : array(field(object, "shape", key + "."), key + ".shape")) {
      int64_t size = integer(dim, key + ".shape");
      if (size < 0) fail(key + ".shape", "must hold non-negative sizes");
      spec.shape.push_back(size);
    }
    if (dtype_by_name(spec.dtype) == nullptr) fail(key + ".dtype", "is '" + spec.dtype + "', which the runner does not support");
    return spec;
  }

  std::vector<TensorSpec> tensors(const json::Object& object, const std::string& key) const {
    std::vector<TensorSpec> specs;
    json::Array list = array(field(object, key, ""), key);
    for (size_t i = 0; i < list.size(); ++i) specs.push_back(tensor(list[i], key + "[" + std::to_string(i) + "]"));
    return specs;
  }

 private:
  std::string path_;
};

bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

// runtime.gpu: which device, and the VM's devices in vm_initialization order. Which devices the
// runner can drive is gpu.cc's business; here only the shape of the entry is checked.
GpuRuntime read_gpu(const Reader& reader, const json::Object& gpu) {
  GpuRuntime result;
  result.device = reader.string(gpu, "device", "runtime.gpu.");
  json::Object runtime = reader.object(reader.field(gpu, "runtime", "runtime.gpu."), "runtime.gpu.runtime");
  const std::string key = "runtime.gpu.runtime.vm_initialization";
  for (const Any& entry : reader.array(reader.field(runtime, "vm_initialization", "runtime.gpu.runtime."), key)) {
    json::Array pair = reader.array(entry, key);
    if (pair.size() != 2) reader.fail(key, "must hold [device type, device id] pairs");
    int64_t type = reader.integer(pair[0], key), id = reader.integer(pair[1], key);
    if (type < 1 || type > 64 || id < 0 || id > 64) reader.fail(key, "must hold device types 1-64 and ids 0-64");
    result.vm_devices.emplace_back(static_cast<int>(type), static_cast<int>(id));
  }
  if (result.vm_devices.size() < 2) reader.fail(key, "must list the GPU and the host CPU");
  if (auto major = runtime.Get(Any(String("cuda_major")))) result.cuda_major = reader.integer(*major, "runtime.gpu.runtime.cuda_major");
  return result;
}

void read_runtime(const Reader& reader, const json::Object& runtime, Manifest& manifest) {
  manifest.threads = reader.integer(reader.field(runtime, "threads", "runtime."), "runtime.threads");
  if (manifest.threads < 1) reader.fail("runtime.threads", "must be >= 1");
  for (const Any& id : reader.array(reader.field(runtime, "cpu_ids", "runtime."), "runtime.cpu_ids")) {
    int64_t cpu = reader.integer(id, "runtime.cpu_ids");
    if (cpu < 0 || cpu > 4095) reader.fail("runtime.cpu_ids", "must hold core numbers 0-4095");
    manifest.cpu_ids.push_back(static_cast<int>(cpu));
  }
  if (auto spin = runtime.Get(Any(String("spin_count")))) manifest.spin_count = reader.integer(*spin, "runtime.spin_count");
  if (auto gpu = runtime.Get(Any(String("gpu")))) manifest.gpu = read_gpu(reader, reader.object(*gpu, "runtime.gpu"));
}

void read_files(const Reader& reader, const json::Object& files, Manifest& manifest) {
  for (const auto& [key, value] : files) {
    auto name = key.as<String>();
    auto digest = value.as<String>();
    if (!name || !is_plain_file_name(std::string(*name))) reader.fail("files", "must name plain files in the artifact folder");
    if (!digest || digest->size() != 64) reader.fail("files." + std::string(*name), "must be a sha256 hex digest");
    manifest.files.emplace_back(std::string(*name), std::string(*digest));
  }
}

// The JSON parser recurses per nesting level; a manifest is a few levels deep, so anything
// deeper is refused before parsing rather than risking the stack.
bool nesting_within(const std::string& text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

}  // namespace

std::string TensorSpec::describe() const { return name + " " + describe_tensor(shape, dtype); }

Manifest parse_manifest(const std::string& text, const std::string& path) {
  if (!nesting_within(text, kMaxNesting)) throw InputError(path + " nests deeper than " + std::to_string(kMaxNesting) + " levels: not a manifest");
  String error;
  Any root = json::Parse(String(text), &error);
  if (!error.empty()) throw InputError(path + " is not valid JSON (" + std::string(error) + "); rebuild the artifact");
  Reader reader(path);
  json::Object top = reader.object(root, "(top level)");
  if (reader.string(top, "format") != kFormat) reader.fail("format", std::string("is not '") + kFormat + "'");
  if (reader.integer(reader.field(top, "format_version", ""), "format_version") != kFormatVersion) {
    reader.fail("format_version", "is not " + std::to_string(kFormatVersion));
  }
  Manifest manifest;
  manifest.name = reader.string(top, "name");
  manifest.library = reader.string(top, "library");
  if (!is_plain_file_name(manifest.library)) reader.fail("library", "must be a file name in the artifact folder");
  manifest.inputs = reader.tensors(top, "inputs");
  manifest.outputs = reader.tensors(top, "outputs");
  json::Object cpu = reader.object(reader.field(reader.object(reader.field(top, "target", ""), "target"), "cpu", "target."), "target.cpu");
  manifest.triple = reader.string(cpu, "triple", "target.cpu.");
  read_runtime(reader, reader.object(reader.field(top, "runtime", ""), "runtime"), manifest);
  read_files(reader, reader.object(reader.field(top, "files", ""), "files"), manifest);
  return manifest;
}

}  // namespace edgekit
