// edgekit-runner: run an edgekit artifact with the TVM runtime alone (no Python on the device).
//
// Order matters: everything a user can get wrong (options, artifact hashes, inputs, output
// path, cores) is checked before any code is loaded, from the artifact or (GPU models, gpu.h)
// from the device runtime, and every failure ends as one `edgekit-runner: error: ...` line on
// stderr with exit 2 (usage, inputs, missing libraries) or 1 (runtime).
#include <tvm/ffi/error.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "artifact.h"
#include "cpus.h"
#include "error.h"
#include "gpu.h"
#include "inputs.h"
#include "model.h"
#include "options.h"
#include "outputs.h"
#include "report.h"
#include "stats.h"
#include "thread_pool.h"
#include "timed_runs.h"

namespace edgekit {
namespace {

// Cores: --cpus, else the manifest's cpu_ids (both pinned, one thread per core), else share the
// cores this process may use. Threads: --threads, else the manifest's, at most one per core.
ThreadPlan plan_threads(const Options& options, const Manifest& manifest) {
  ThreadPlan plan;
  std::vector<int> allowed = allowed_cpus();
  std::vector<int> requested = options.cpus ? *options.cpus : manifest.cpu_ids;
  require_available(requested, allowed);
  plan.pinned = !requested.empty();
  plan.cpus = plan.pinned ? requested : allowed;
  int64_t default_threads = std::min<int64_t>(manifest.threads, std::max<size_t>(plan.cpus.size(), 1));
  plan.threads = options.threads ? *options.threads : static_cast<int>(default_threads);
  plan.spin = options.spin;
  plan.spin_count = manifest.spin_count;
  return plan;
}

// The architecture this runner was compiled for, as target triples name it ("" if unknown).
constexpr const char* kRunnerArch =
#if defined(__x86_64__)
    "x86_64";
#elif defined(__aarch64__)
    "aarch64";
#else
    "";
#endif

// A library for another architecture fails in dlopen with a misleading "No such file or
// directory"; the manifest says what it was built for, so refuse it before loading.
void require_runner_architecture(const Manifest& manifest) {
  std::string arch = manifest.triple.substr(0, manifest.triple.find('-'));
  if (*kRunnerArch && arch != kRunnerArch) {
    throw InputError("the artifact was built for " + manifest.triple + " but this runner is for " + kRunnerArch +
                     ": build the runner for the artifact's target");
  }
}

Model load_model(const Artifact& artifact, const Placement& placement) {
  std::string path = artifact.library_path();
  if (path[0] != '/') path = "./" + path;  // a bare name would make dlopen search the library path
  try {
    return Model::load(path, placement);
  } catch (const tvm::ffi::Error& error) {
    throw RuntimeFailure("cannot load " + path + " (" + error.kind() + ": " + error.message() + ")");
  }
}

std::vector<NpyArray> fetch_outputs(const Measurement& measurement, const Manifest& manifest) {
  if (measurement.outputs.size() != manifest.outputs.size()) {
    throw RuntimeFailure("the model returned " + std::to_string(measurement.outputs.size()) + " outputs, the manifest lists " +
                         std::to_string(manifest.outputs.size()));
  }
  std::vector<NpyArray> arrays;
  for (const tvm::ffi::Tensor& tensor : measurement.outputs) arrays.push_back(to_host(tensor));
  return arrays;
}

Report make_report(const Options& options, const Manifest& manifest, const ThreadPlan& plan, const Measurement& measurement,
                   const std::vector<NpyArray>& outputs) {
  Report report;
  report.model = manifest.name;
  report.iters = static_cast<int64_t>(measurement.latency_ms.size());
  report.warmup = options.warmup;
  report.threads = plan.threads;
  report.cpus = plan.cpus;
  report.latency = summarize_latency(measurement.latency_ms);
  report.cpu_ms_per_inference = measurement.cpu_seconds * 1e3 / static_cast<double>(std::max<int64_t>(report.iters, 1));
  report.max_rss_mb = max_rss_mb();
  report.rate_mode = options.rate_mode();
  report.rate_hz = options.rate_hz;
  report.cpu_seconds_per_wall_second = measurement.cpu_seconds / std::max(measurement.wall_seconds, 1e-9);
  report.missed_deadlines = measurement.missed_deadlines;
  for (size_t i = 0; i < outputs.size(); ++i) {
    report.outputs.push_back(TensorSpec{manifest.outputs[i].name, outputs[i].shape, outputs[i].dtype->name});
  }
  return report;
}

int run(int argc, char** argv) {
  Options options = parse_options(argc, argv);
  if (options.help) {
    std::fputs(usage(), stdout);
    return 0;
  }
  Artifact artifact = open_verified_artifact(options.bundle);
  const Manifest& manifest = artifact.manifest;
  std::vector<NpyArray> arrays = read_inputs(options.inputs, manifest.inputs);
  if (!options.output.empty()) check_output_path(options.output, options.output_is_npz(), manifest.outputs.size());
  require_runner_architecture(manifest);
  ThreadPlan plan = plan_threads(options, manifest);

  if (plan.pinned) pin_current_thread(plan.cpus);
  configure_thread_pool(plan);
  // A GPU model's kernels can only be unpacked once the device runtime is in the process.
  Placement placement = manifest.gpu ? load_gpu_runtime(*manifest.gpu, options.spin) : Placement();
  Model model = load_model(artifact, placement);
  std::vector<tvm::ffi::Tensor> inputs;
  for (const NpyArray& array : arrays) inputs.push_back(model.upload(array));  // copied once, before timing

  Measurement measurement = options.rate_mode()
                                ? run_at_rate(model, inputs, options.warmup, options.rate_hz, options.duration_s)
                                : run_iterations(model, inputs, options.warmup, options.iters);
  std::vector<NpyArray> outputs = fetch_outputs(measurement, manifest);
  if (!options.output.empty()) {
    std::vector<std::string> names;
    for (const TensorSpec& spec : manifest.outputs) names.push_back(spec.name);
    write_outputs(options.output, options.output_is_npz(), names, outputs);
  }
  std::cout << report_json(make_report(options, manifest, plan, measurement, outputs)) << std::endl;
  return 0;
}

// Error text on one line: TVM messages carry newlines and tracebacks.
std::string one_line(const std::string& text) {
  std::string line;
  bool space = false;
  for (char c : text) {
    bool blank = c == '\n' || c == '\r' || c == '\t' || c == ' ';
    if (blank) {
      space = !line.empty();
      continue;
    }
    if (space) line += ' ';
    space = false;
    line += c;
  }
  return line;
}

int fail(int exit_code, const std::string& message) {
  std::fflush(stdout);
  std::cerr << "edgekit-runner: error: " << one_line(message) << std::endl;
  return exit_code;
}

}  // namespace
}  // namespace edgekit

int main(int argc, char** argv) {
  using edgekit::fail;
  try {
    return edgekit::run(argc, argv);
  } catch (const edgekit::RunnerError& error) {
    return fail(error.exit_code(), error.what());
  } catch (const tvm::ffi::Error& error) {
    return fail(edgekit::kExitRuntime, "TVM " + error.kind() + ": " + error.message());
  } catch (const std::bad_alloc&) {
    return fail(edgekit::kExitRuntime, "out of memory");
  } catch (const std::exception& error) {
    return fail(edgekit::kExitRuntime, error.what());
  } catch (...) {
    return fail(edgekit::kExitRuntime, "unexpected exception");
  }
}
