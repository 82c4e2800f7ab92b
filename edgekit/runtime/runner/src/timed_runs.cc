#include "timed_runs.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>

#include "stats.h"

namespace edgekit {
namespace {

constexpr int64_t kNanosPerSecond = 1000000000;

int64_t now_ns() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec * kNanosPerSecond + now.tv_nsec;
}

void sleep_until_ns(int64_t deadline) {
  timespec until{static_cast<time_t>(deadline / kNanosPerSecond), static_cast<long>(deadline % kNanosPerSecond)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, nullptr) == EINTR) {
  }
}

// Marks the start and end of the timed loop for `edgekit estimate`, whose QEMU plugin
// (edgekit/measure/qemu_plugin/block_counts.c) counts instructions between two such calls. The
// descriptor belongs to no process, so on a board the call is one failed syscall per loop.
constexpr int kEstimateMarkFd = -0x656b;

void mark_for_estimate() { (void)lseek(kEstimateMarkFd, 0, SEEK_CUR); }

void warm_up(const Model& model, const std::vector<tvm::ffi::Tensor>& inputs, int64_t warmup, Measurement& result) {
  for (int64_t i = 0; i < warmup; ++i) result.outputs = model.run(inputs);
}

}  // namespace

Measurement run_iterations(const Model& model, const std::vector<tvm::ffi::Tensor>& inputs, int64_t warmup,
                           int64_t iters) {
  Measurement result;
  warm_up(model, inputs, warmup, result);
  result.latency_ms.reserve(static_cast<size_t>(iters));
  double cpu_start = cpu_seconds();
  int64_t wall_start = now_ns();
  mark_for_estimate();
  for (int64_t i = 0; i < iters; ++i) {
    int64_t start = now_ns();
    result.outputs = model.run(inputs);
    result.latency_ms.push_back(static_cast<double>(now_ns() - start) * 1e-6);
  }
  mark_for_estimate();
  result.wall_seconds = static_cast<double>(now_ns() - wall_start) * 1e-9;
  result.cpu_seconds = cpu_seconds() - cpu_start;
  return result;
}

Measurement run_at_rate(const Model& model, const std::vector<tvm::ffi::Tensor>& inputs, int64_t warmup,
                        double rate_hz, double duration_s) {
  Measurement result;
  warm_up(model, inputs, warmup, result);
  int64_t frames = std::max<int64_t>(1, std::llround(duration_s * rate_hz));
  double period_ns = static_cast<double>(kNanosPerSecond) / rate_hz;
  auto deadline = [&](int64_t frame) { return static_cast<int64_t>(std::llround(period_ns * static_cast<double>(frame))); };
  result.latency_ms.reserve(static_cast<size_t>(frames));
  double cpu_start = cpu_seconds();
  int64_t wall_start = now_ns();
  for (int64_t frame = 0; frame < frames; ++frame) {
    sleep_until_ns(wall_start + deadline(frame));
    int64_t start = now_ns();
    result.outputs = model.run(inputs);
    int64_t end = now_ns();
    result.latency_ms.push_back(static_cast<double>(end - start) * 1e-6);
    if (end > wall_start + deadline(frame + 1)) ++result.missed_deadlines;
  }
  sleep_until_ns(wall_start + deadline(frames));
  result.wall_seconds = static_cast<double>(now_ns() - wall_start) * 1e-9;
  result.cpu_seconds = cpu_seconds() - cpu_start;
  return result;
}

}  // namespace edgekit
