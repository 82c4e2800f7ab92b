// The command line: edgekit-runner BUNDLE --input [NAME=]FILE.npy ... [options].
#ifndef EDGEKIT_RUNNER_OPTIONS_H_
#define EDGEKIT_RUNNER_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace edgekit {

struct InputOption {
  std::string name;  // empty: the model's only input
  std::string path;
};

struct Options {
  std::string bundle;
  std::vector<InputOption> inputs;
  std::string output;  // .npz for all outputs by name, else .npy (one output); empty: none
  int64_t iters = 1;
  int64_t warmup = 0;
  std::optional<int> threads;            // default: the manifest's runtime.threads
  std::optional<std::vector<int>> cpus;  // default: the manifest's runtime.cpu_ids
  double rate_hz = 0;                    // > 0: run at this fixed rate (frames per second)
  double duration_s = 10;                // how long rate mode runs
  bool spin = false;                     // keep TVM's default spinning workers
  bool help = false;

  bool rate_mode() const { return rate_hz > 0; }
  bool output_is_npz() const;
};

// Parse argv. Throws InputError with a one-line message for anything malformed.
Options parse_options(int argc, char** argv);

const char* usage();

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_OPTIONS_H_
