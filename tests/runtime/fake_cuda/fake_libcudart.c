/* Fake libcudart.so.N: the CUDA runtime API calls libtvm_runtime_cuda.so (TVM 0.27) links
 * against (`nm -D --undefined-only libtvm_runtime_cuda.so | grep cuda`), plus the two that
 * edgekit-runner makes itself (cudaGetDeviceCount, cudaSetDeviceFlags).
 *
 * One device; "device" memory is host memory from calloc, so copies are memcpy and an output
 * nobody's kernel wrote reads back as zeros. Calls TVM should not make on the runner's path
 * (graphs, device properties) log "unexpected" and fail. The symbols must carry the version
 * node libcudart.so.N, as the real library's do: build with -Wl,-soname,libcudart.so.N and a
 * version script `libcudart.so.N { global: cuda*; local: *; };` (the test writes it).
 */
#include <stdint.h>
#include <string.h>

#include "fake_cuda_log.h"

enum { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorNoDevice = 100, cudaErrorNotSupported = 801 };

static const char* const kCopyKinds[] = {"HtoH", "HtoD", "DtoH", "DtoD", "Default"};
static const size_t kDeviceMemory = (size_t)8 << 30;

/* $FAKE_CUDA_NO_DEVICE: a machine whose driver finds no GPU. */
FAKE_EXPORT int cudaGetDeviceCount(int* count) {
  fake_log("cudaGetDeviceCount");
  *count = getenv("FAKE_CUDA_NO_DEVICE") ? 0 : 1;
  return *count ? cudaSuccess : cudaErrorNoDevice;
}

FAKE_EXPORT int cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidValue; }

FAKE_EXPORT int cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

FAKE_EXPORT int cudaSetDeviceFlags(unsigned int flags) {
  fake_log("cudaSetDeviceFlags %u", flags);
  return cudaSuccess;
}

FAKE_EXPORT int cudaDeviceGetAttribute(int* value, int attribute, int device) {
  fake_log("cudaDeviceGetAttribute %d", attribute);
  *value = 1024;
  return cudaSuccess;
}

FAKE_EXPORT int cudaGetDeviceProperties(void* properties, int device) {
  fake_log("unexpected cudaGetDeviceProperties");
  return cudaErrorNotSupported;
}

FAKE_EXPORT int cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = kDeviceMemory;
  *total_bytes = kDeviceMemory;
  return cudaSuccess;
}

FAKE_EXPORT int cudaMalloc(void** pointer, size_t size) {
  *pointer = calloc(1, size ? size : 1);
  fake_log("cudaMalloc %zu", size);
  return *pointer ? cudaSuccess : cudaErrorMemoryAllocation;
}

FAKE_EXPORT int cudaFree(void* pointer) {
  fake_log("cudaFree");
  free(pointer);
  return cudaSuccess;
}

FAKE_EXPORT int cudaMallocHost(void** pointer, size_t size) {
  *pointer = calloc(1, size ? size : 1);
  fake_log("cudaMallocHost %zu", size);
  return *pointer ? cudaSuccess : cudaErrorMemoryAllocation;
}

FAKE_EXPORT int cudaFreeHost(void* pointer) {
  free(pointer);
  return cudaSuccess;
}

FAKE_EXPORT int cudaMemcpyAsync(void* to, const void* from, size_t size, int kind, void* stream) {
  fake_log("cudaMemcpyAsync %s %zu stream=%p", kind >= 0 && kind <= 4 ? kCopyKinds[kind] : "?", size, stream);
  memcpy(to, from, size);
  return cudaSuccess;
}

FAKE_EXPORT int cudaMemcpyPeerAsync(void* to, int to_device, const void* from, int from_device, size_t size, void* stream) {
  fake_log("cudaMemcpyPeerAsync %zu", size);
  memcpy(to, from, size);
  return cudaSuccess;
}

FAKE_EXPORT int cudaStreamSynchronize(void* stream) {
  fake_log("cudaStreamSynchronize stream=%p", stream);
  return cudaSuccess;
}

FAKE_EXPORT int cudaStreamCreate(void** stream) {
  fake_log("cudaStreamCreate");
  *stream = calloc(1, 16);
  return cudaSuccess;
}

FAKE_EXPORT int cudaStreamCreateWithFlags(void** stream, unsigned int flags) {
  fake_log("cudaStreamCreateWithFlags %u", flags);
  *stream = calloc(1, 16);
  return cudaSuccess;
}

FAKE_EXPORT int cudaStreamDestroy(void* stream) {
  fake_log("cudaStreamDestroy");
  free(stream);
  return cudaSuccess;
}

FAKE_EXPORT int cudaStreamWaitEvent(void* stream, void* event, unsigned int flags) {
  fake_log("cudaStreamWaitEvent");
  return cudaSuccess;
}

FAKE_EXPORT int cudaEventCreate(void** event) {
  fake_log("cudaEventCreate");
  *event = calloc(1, 16);
  return cudaSuccess;
}

FAKE_EXPORT int cudaEventDestroy(void* event) {
  free(event);
  return cudaSuccess;
}

FAKE_EXPORT int cudaEventRecord(void* event, void* stream) {
  fake_log("cudaEventRecord");
  return cudaSuccess;
}

FAKE_EXPORT int cudaEventSynchronize(void* event) {
  fake_log("cudaEventSynchronize");
  return cudaSuccess;
}

FAKE_EXPORT int cudaEventElapsedTime(float* milliseconds, void* start, void* end) {
  *milliseconds = 0;
  return cudaSuccess;
}

FAKE_EXPORT int cudaGetLastError(void) { return cudaSuccess; }

FAKE_EXPORT int cudaPeekAtLastError(void) { return cudaSuccess; }

FAKE_EXPORT const char* cudaGetErrorName(int error) { return "cudaErrorFake"; }

FAKE_EXPORT const char* cudaGetErrorString(int error) {
  return error == cudaErrorNoDevice ? "no CUDA-capable device is detected" : "error from the fake CUDA runtime";
}

/* CUDA graphs: only with the VM's cuda-graph builtins, which the default pipeline does not use. */
FAKE_EXPORT int cudaStreamBeginCapture(void* stream, int mode) {
  fake_log("unexpected cudaStreamBeginCapture");
  return cudaErrorNotSupported;
}

FAKE_EXPORT int cudaStreamEndCapture(void* stream, void** graph) {
  fake_log("unexpected cudaStreamEndCapture");
  return cudaErrorNotSupported;
}

FAKE_EXPORT int cudaGraphInstantiate(void** graph_exec, void* graph, unsigned long long flags) {
  fake_log("unexpected cudaGraphInstantiate");
  return cudaErrorNotSupported;
}

FAKE_EXPORT int cudaGraphLaunch(void* graph_exec, void* stream) {
  fake_log("unexpected cudaGraphLaunch");
  return cudaErrorNotSupported;
}

FAKE_EXPORT int cudaGraphDestroy(void* graph) { return cudaErrorNotSupported; }

FAKE_EXPORT int cudaGraphExecDestroy(void* graph_exec) { return cudaErrorNotSupported; }
