// The one JSON object the runner prints on stdout.
#ifndef EDGEKIT_RUNNER_REPORT_H_
#define EDGEKIT_RUNNER_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "manifest.h"
#include "stats.h"

namespace edgekit {

struct Report {
  std::string model;
  int64_t iters = 0;
  int64_t warmup = 0;
  int threads = 1;
  std::vector<int> cpus;
  LatencySummary latency;
  double cpu_ms_per_inference = 0;
  double max_rss_mb = 0;
  bool rate_mode = false;
  double rate_hz = 0;                      // rate mode only
  double cpu_seconds_per_wall_second = 0;  // rate mode only
  int64_t missed_deadlines = 0;            // rate mode only
  std::vector<TensorSpec> outputs;         // as the last run produced them
};

// One line of JSON, keys in a fixed order.
std::string report_json(const Report& report);

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_REPORT_H_
