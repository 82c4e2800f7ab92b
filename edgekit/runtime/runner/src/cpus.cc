#include "cpus.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "error.h"

namespace edgekit {
namespace {

constexpr int kMaxCpu = CPU_SETSIZE - 1;  // what a cpu_set_t can hold (1023)

int parse_cpu(const std::string& list, const std::string& text) {
  if (text.empty() || text.size() > 4 || text.find_first_not_of("0123456789") != std::string::npos || std::stoi(text) > kMaxCpu) {
    throw InputError("--cpus '" + list + "' is not a core list (e.g. 0-3 or 4,5,6,7; cores 0-" + std::to_string(kMaxCpu) + ")");
  }
  return std::stoi(text);
}

}  // namespace

std::vector<int> parse_cpu_list(const std::string& text) {
  std::vector<int> cpus;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t dash = part.find('-');
    int low = parse_cpu(text, part.substr(0, dash));
    int high = dash == std::string::npos ? low : parse_cpu(text, part.substr(dash + 1));
    if (high < low) throw InputError("--cpus '" + text + "' has a descending range " + part);
    for (int cpu = low; cpu <= high; ++cpu) cpus.push_back(cpu);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int cpu = 0; cpu <= kMaxCpu; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

void require_available(const std::vector<int>& cpus, const std::vector<int>& allowed) {
  std::vector<int> missing;
  for (int cpu : cpus) {
    if (!std::binary_search(allowed.begin(), allowed.end(), cpu)) missing.push_back(cpu);
  }
  if (!missing.empty()) {
    throw InputError("cores " + format_cpu_list(missing) + " are not available here; this process may use cores " +
                     format_cpu_list(allowed) + " (pass --cpus)");
  }
}

void pin_current_thread(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int cpu : cpus) CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    throw RuntimeFailure("cannot pin to cores " + format_cpu_list(cpus) + ": " + std::strerror(errno));
  }
}

std::string format_cpu_list(const std::vector<int>& cpus) {
  std::string text;
  for (size_t i = 0; i < cpus.size(); ++i) text += (i ? "," : "") + std::to_string(cpus[i]);
  return text;
}

}  // namespace edgekit
