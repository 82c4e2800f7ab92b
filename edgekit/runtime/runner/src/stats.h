// Clocks, process CPU time, peak memory and latency percentiles.
#ifndef EDGEKIT_RUNNER_STATS_H_
#define EDGEKIT_RUNNER_STATS_H_

#include <vector>

namespace edgekit {

struct LatencySummary {
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;  // milliseconds
};

// Percentiles interpolate linearly between order statistics, as numpy.percentile does.
LatencySummary summarize_latency(std::vector<double> ms);

double monotonic_seconds();  // CLOCK_MONOTONIC
double cpu_seconds();        // user + system time of the whole process (all threads)
double max_rss_mb();         // peak resident set size

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_STATS_H_
