// The measured loops: N back-to-back inferences, or inferences at a fixed frame rate.
#ifndef EDGEKIT_RUNNER_TIMED_RUNS_H_
#define EDGEKIT_RUNNER_TIMED_RUNS_H_

#include <cstdint>
#include <vector>

#include "model.h"

namespace edgekit {

struct Measurement {
  std::vector<double> latency_ms;         // one per timed inference
  double cpu_seconds = 0;                 // process CPU time over the timed part
  double wall_seconds = 0;                // wall time of the timed part
  int64_t missed_deadlines = 0;           // rate mode: frames that ended after their period
  std::vector<tvm::ffi::Tensor> outputs;  // of the last inference
};

// `warmup` untimed inferences, then `iters` timed ones back to back.
Measurement run_iterations(const Model& model, const std::vector<tvm::ffi::Tensor>& inputs, int64_t warmup,
                           int64_t iters);

// `warmup` untimed inferences, then one inference at the start of every 1/rate_hz period for
// `duration_s` seconds (absolute deadlines, so lateness does not accumulate). The wall time
// runs to the end of the last period, so idle time between frames counts.
Measurement run_at_rate(const Model& model, const std::vector<tvm::ffi::Tensor>& inputs, int64_t warmup,
                        double rate_hz, double duration_s);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_TIMED_RUNS_H_
