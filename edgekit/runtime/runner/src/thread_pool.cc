#include "thread_pool.h"

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <cstdlib>
#include <string>

#include "error.h"

namespace edgekit {
namespace {

// runtime.config_threadpool modes (TVM threading_backend.h, ThreadGroup::AffinityMode).
constexpr int kOneCorePerThread = -2;
constexpr int kThreadsShareAllCores = -3;

}  // namespace

void configure_thread_pool(const ThreadPlan& plan) {
  setenv("TVM_NUM_THREADS", std::to_string(plan.threads).c_str(), 1);
  if (!plan.spin) {
    // TVM's default of 300000 spins keeps idle workers busy: about half a core at 30 Hz.
    setenv("TVM_THREAD_POOL_SPIN_COUNT", std::to_string(plan.spin_count).c_str(), 1);
  }
  auto config = tvm::ffi::Function::GetGlobal("runtime.config_threadpool");
  if (!config) throw RuntimeFailure("libtvm_runtime has no runtime.config_threadpool: is it TVM 0.27?");
  tvm::ffi::Array<tvm::ffi::String> cpus;
  for (int cpu : plan.cpus) cpus.push_back(tvm::ffi::String(std::to_string(cpu)));
  (*config)(plan.pinned ? kOneCorePerThread : kThreadsShareAllCores, plan.threads, cpus);
}

}  // namespace edgekit
