// Core lists ("4-7", "0,2"), the cores this process may use, and pinning the main thread.
#ifndef EDGEKIT_RUNNER_CPUS_H_
#define EDGEKIT_RUNNER_CPUS_H_

#include <string>
#include <vector>

namespace edgekit {

// Parse "4-7", "0,2,4" or "0-1,6": sorted, without duplicates. Throws InputError.
std::vector<int> parse_cpu_list(const std::string& text);

// The cores in this process's affinity mask.
std::vector<int> allowed_cpus();

// Throws InputError naming the missing cores if `cpus` is not a subset of `allowed`.
void require_available(const std::vector<int>& cpus, const std::vector<int>& allowed);

// Restrict the calling thread to `cpus` (sched_setaffinity). Throws RuntimeFailure.
void pin_current_thread(const std::vector<int>& cpus);

std::string format_cpu_list(const std::vector<int>& cpus);  // "0,1,4"

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_CPUS_H_
