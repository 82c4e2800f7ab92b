/* A test double of NVIDIA's libcuda.so.1 and libcudart.so.N for tests/test_runner_gpu.py.
 *
 * TVM's CUDA runtime (libtvm_runtime_cuda.so) and edgekit-runner are the real ones; only the
 * driver below them is fake: "device" memory is host memory, copies are memcpy, and a kernel
 * launch runs nothing. Every call is appended as one line to the file named by $FAKE_CUDA_LOG,
 * which the test reads back. Self-contained: no CUDA headers are needed to build it.
 */
#ifndef FAKE_CUDA_LOG_H_
#define FAKE_CUDA_LOG_H_

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* One line per call, written with a single O_APPEND write so the two libraries' lines stay in
 * call order in the same file. */
static void fake_log(const char* format, ...) {
  const char* path = getenv("FAKE_CUDA_LOG");
  if (path == NULL || *path == '\0') return;
  char line[512];
  va_list args;
  va_start(args, format);
  int size = vsnprintf(line, sizeof(line) - 1, format, args);
  va_end(args);
  if (size < 0) return;
  if (size > (int)sizeof(line) - 2) size = (int)sizeof(line) - 2;
  line[size++] = '\n';
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) return;
  ssize_t written = write(fd, line, (size_t)size);
  (void)written;
  close(fd);
}

#define FAKE_EXPORT __attribute__((visibility("default")))

#endif /* FAKE_CUDA_LOG_H_ */
