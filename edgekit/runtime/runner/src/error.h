// Errors of the runner: each becomes one `edgekit-runner: error: ...` line and an exit code.
#ifndef EDGEKIT_RUNNER_ERROR_H_
#define EDGEKIT_RUNNER_ERROR_H_

#include <stdexcept>
#include <string>

namespace edgekit {

constexpr int kExitRuntime = 1;  // the model failed to load or run
constexpr int kExitInput = 2;    // bad usage, bad files, tampered artifact: the user can fix it

class RunnerError : public std::runtime_error {
 public:
  RunnerError(int exit_code, const std::string& message)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Bad option, file, input array or artifact: exit 2.
class InputError : public RunnerError {
 public:
  explicit InputError(const std::string& message) : RunnerError(kExitInput, message) {}
};

// Loading or running the model failed: exit 1.
class RuntimeFailure : public RunnerError {
 public:
  explicit RuntimeFailure(const std::string& message) : RunnerError(kExitRuntime, message) {}
};

}  // namespace edgekit

#endif  // EDGEKIT_RUNNER_ERROR_H_
