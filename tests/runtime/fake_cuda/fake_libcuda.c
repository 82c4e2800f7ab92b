/* Fake libcuda.so.1: the CUDA driver API calls libtvm_runtime_cuda.so (TVM 0.27) links against
 * (`nm -D --undefined-only libtvm_runtime_cuda.so | grep ' cu[A-Z]'`).
 *
 * cuModuleLoadData accepts only a CUDA ELF (a cubin), as a driver without a JIT would: PTX or
 * CUDA source would be refused. It logs the image's size, SM and FNV-1a hash so the test can
 * match them with the cubin packed in model.so. cuModuleGetFunction fails for a kernel the
 * cubin does not define. Build: cc -shared -fPIC -Wl,-soname,libcuda.so.1.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <string.h>

#include "fake_cuda_log.h"

enum { CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1, CUDA_ERROR_INVALID_IMAGE = 200, CUDA_ERROR_NOT_FOUND = 500, CUDA_ERROR_NOT_SUPPORTED = 801 };
enum { EM_CUDA = 190 };

typedef struct {
  const unsigned char* image;
  size_t size;
} FakeModule;

typedef struct {
  char name[256];
} FakeFunction;

/* cuda.h's CUlaunchConfig (CUDA 12 and 13). */
typedef struct {
  unsigned int gridDimX, gridDimY, gridDimZ;
  unsigned int blockDimX, blockDimY, blockDimZ;
  unsigned int sharedMemBytes;
  void* hStream;
  void* attrs;
  unsigned int numAttrs;
} FakeLaunchConfig;

static uint16_t read_u16(const unsigned char* p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t read_u32(const unsigned char* p) { return (uint32_t)read_u16(p) | (uint32_t)read_u16(p + 2) << 16; }
static uint64_t read_u64(const unsigned char* p) { return (uint64_t)read_u32(p) | (uint64_t)read_u32(p + 4) << 32; }

/* The bytes an ELF64 file spans: the furthest end of its headers and of its sections' data. */
static size_t elf_extent(const unsigned char* elf) {
  uint64_t phoff = read_u64(elf + 32), shoff = read_u64(elf + 40);
  uint16_t phentsize = read_u16(elf + 54), phnum = read_u16(elf + 56), shentsize = read_u16(elf + 58), shnum = read_u16(elf + 60);
  uint64_t end = shoff + (uint64_t)shnum * shentsize;
  if (phoff + (uint64_t)phnum * phentsize > end) end = phoff + (uint64_t)phnum * phentsize;
  for (uint16_t i = 0; i < shnum; ++i) {
    const unsigned char* section = elf + shoff + (uint64_t)i * shentsize;
    if (read_u32(section + 4) == 8) continue; /* SHT_NOBITS: no bytes in the file */
    uint64_t section_end = read_u64(section + 24) + read_u64(section + 32);
    if (section_end > end) end = section_end;
  }
  return (size_t)end;
}

static uint64_t fnv1a64(const unsigned char* data, size_t size) {
  uint64_t hash = 1469598103934665603ULL;
  for (size_t i = 0; i < size; ++i) hash = (hash ^ data[i]) * 1099511628211ULL;
  return hash;
}

FAKE_EXPORT int cuModuleLoadData(void** module, const void* image) {
  const unsigned char* elf = (const unsigned char*)image;
  if (memcmp(elf, "\x7f" "ELF\x02\x01", 6) != 0 || read_u16(elf + 18) != EM_CUDA) {
    fake_log("cuModuleLoadData refused: not a cubin (starts with %.16s)", (const char*)image);
    return CUDA_ERROR_INVALID_IMAGE;
  }
  FakeModule* loaded = (FakeModule*)malloc(sizeof(FakeModule));
  loaded->image = elf;
  loaded->size = elf_extent(elf);
  /* CUDA ELF ABI version 8 (CUDA 13) keeps the SM in e_flags bits 8-15, earlier ones in bits 0-7. */
  uint32_t flags = read_u32(elf + 48);
  unsigned sm = elf[8] >= 8 ? (flags >> 8) & 0xFF : flags & 0xFF;
  fake_log("cuModuleLoadData cubin bytes=%zu sm=%u fnv=%016llx", loaded->size, sm, (unsigned long long)fnv1a64(elf, loaded->size));
  *module = loaded;
  return CUDA_SUCCESS;
}

FAKE_EXPORT int cuModuleGetFunction(void** function, void* module, const char* name) {
  const FakeModule* loaded = (const FakeModule*)module;
  char section[300];
  int length = snprintf(section, sizeof(section), ".text.%s", name);
  /* nvcc puts each kernel in a section named .text.<kernel>; +1 matches the terminating NUL. */
  if (length <= 0 || length >= (int)sizeof(section) || memmem(loaded->image, loaded->size, section, (size_t)length + 1) == NULL) {
    fake_log("cuModuleGetFunction missing %s", name);
    return CUDA_ERROR_NOT_FOUND;
  }
  FakeFunction* found = (FakeFunction*)calloc(1, sizeof(FakeFunction));
  snprintf(found->name, sizeof(found->name), "%s", name);
  fake_log("cuModuleGetFunction %s", name);
  *function = found;
  return CUDA_SUCCESS;
}

FAKE_EXPORT int cuLaunchKernelEx(const FakeLaunchConfig* config, void* function, void** params, void** extra) {
  fake_log("cuLaunchKernelEx %s grid=%u,%u,%u block=%u,%u,%u stream=%p", ((const FakeFunction*)function)->name, config->gridDimX,
           config->gridDimY, config->gridDimZ, config->blockDimX, config->blockDimY, config->blockDimZ, config->hStream);
  return params == NULL ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

FAKE_EXPORT int cuFuncSetAttribute(void* function, int attribute, int value) {
  fake_log("cuFuncSetAttribute %s %d %d", ((const FakeFunction*)function)->name, attribute, value);
  return CUDA_SUCCESS;
}

FAKE_EXPORT int cuModuleUnload(void* module) {
  fake_log("cuModuleUnload");
  free(module);
  return CUDA_SUCCESS;
}

FAKE_EXPORT int cuGetErrorName(int error, const char** text) {
  *text = "CUDA_ERROR_FAKE";
  return CUDA_SUCCESS;
}

FAKE_EXPORT int cuGetErrorString(int error, const char** text) {
  *text = "error from the fake CUDA driver";
  return CUDA_SUCCESS;
}

FAKE_EXPORT int cuDeviceGetName(char* name, int length, int device) {
  snprintf(name, (size_t)length, "fake CUDA device %d", device);
  return CUDA_SUCCESS;
}

FAKE_EXPORT int cuTensorMapEncodeTiled(void) {
  fake_log("unexpected cuTensorMapEncodeTiled");
  return CUDA_ERROR_NOT_SUPPORTED;
}
