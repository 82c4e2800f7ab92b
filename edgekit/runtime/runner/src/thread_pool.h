// Sizing, pinning and spin policy of TVM's CPU thread pool.
#ifndef EDGEKIT_RUNNER_THREAD_POOL_H_
#define EDGEKIT_RUNNER_THREAD_POOL_H_

#include <cstdint>
#include <vector>

namespace edgekit {

struct ThreadPlan {
  int threads = 1;
  std::vector<int> cpus;     // pinned: one thread per listed core; else the cores the threads share
  bool pinned = false;
  bool spin = false;         // keep TVM's default spin count instead of `spin_count`
  int64_t spin_count = 0;
};

// Set TVM_NUM_THREADS and TVM_THREAD_POOL_SPIN_COUNT, then call runtime.config_threadpool.
// The pool reads both variables once, when it starts: call this before the first inference.
// Throws RuntimeFailure.
void configure_thread_pool(const ThreadPlan& plan);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_THREAD_POOL_H_
