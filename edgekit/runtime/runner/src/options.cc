#include "options.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "cpus.h"
#include "error.h"

namespace edgekit {
namespace {

constexpr char kUsage[] =
    "usage: edgekit-runner BUNDLE --input [NAME=]FILE.npy [--input ...] [--output OUT.npz|OUT.npy]\n"
    "                      [--iters N] [--warmup K] [--threads T] [--cpus 4-7] [--spin]\n"
    "                      [--rate HZ [--duration S]]\n"
    "\n"
    "Runs an edgekit artifact (a folder with manifest.json, or a bundle with it in model/) with the\n"
    "TVM runtime and prints one JSON object of timings on stdout.\n"
    "  --input     an input array; NAME= may be left out when the model has one input\n"
    "  --output    write the outputs of the last run (.npz: all by name; .npy: the single output)\n"
    "  --iters     timed runs (default 1); --warmup untimed runs before them (default 0)\n"
    "  --threads   runtime threads (default: the manifest's runtime.threads, at most one per core used)\n"
    "  --cpus      cores to run on, e.g. 4-7 or 0,2 (default: the manifest's runtime.cpu_ids)\n"
    "  --spin      let idle workers spin (TVM's default), and the wait for a CUDA GPU; otherwise they sleep\n"
    "  --rate      run at HZ frames per second for --duration seconds (default 10) and report\n"
    "              CPU-seconds per wall-second\n";

int64_t parse_integer(const std::string& option, const std::string& text, int64_t low, int64_t high) {
  errno = 0;
  char* end = nullptr;
  long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || value < low || value > high) {
    throw InputError(option + " '" + text + "' is not an integer from " + std::to_string(low) + " to " + std::to_string(high));
  }
  return value;
}

double parse_positive(const std::string& option, const std::string& text, double high) {
  errno = 0;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(value) || value <= 0 || value > high) {
    throw InputError(option + " '" + text + "' is not a number above 0 and at most " + std::to_string(static_cast<int64_t>(high)));
  }
  return value;
}

InputOption parse_input(const std::string& text) {
  // NAME=FILE splits at the first '=': a path containing '=' can still be given as NAME=PATH.
  size_t eq = text.find('=');
  InputOption input;
  if (eq == std::string::npos) {
    input.path = text;
  } else {
    input.name = text.substr(0, eq);
    input.path = text.substr(eq + 1);
    if (input.name.empty()) throw InputError("--input '" + text + "' has an empty input name");
  }
  if (input.path.empty()) throw InputError("--input '" + text + "' has no file");
  return input;
}

}  // namespace

bool Options::output_is_npz() const {
  return output.size() >= 4 && output.compare(output.size() - 4, 4, ".npz") == 0;
}

const char* usage() { return kUsage; }

Options parse_options(int argc, char** argv) {
  Options options;
  bool rate_given = false, duration_given = false, iters_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    size_t eq = arg.find('=');
    bool inline_value = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto next = [&]() -> std::string {
      if (inline_value) return value;
      if (i + 1 >= argc) throw InputError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      options.help = true;
    } else if (arg == "--input" || arg == "-i") {
      options.inputs.push_back(parse_input(next()));
    } else if (arg == "--output" || arg == "-o") {
      options.output = next();
      if (options.output.empty()) throw InputError("--output needs a file name");
    } else if (arg == "--iters") {
      options.iters = parse_integer(arg, next(), 1, 1000000000);
      iters_given = true;
    } else if (arg == "--warmup") {
      options.warmup = parse_integer(arg, next(), 0, 1000000000);
    } else if (arg == "--threads") {
      options.threads = static_cast<int>(parse_integer(arg, next(), 1, 1024));
    } else if (arg == "--cpus") {
      options.cpus = parse_cpu_list(next());
    } else if (arg == "--rate") {
      options.rate_hz = parse_positive(arg, next(), 10000);
      rate_given = true;
    } else if (arg == "--duration") {
      options.duration_s = parse_positive(arg, next(), 1e6);
      duration_given = true;
    } else if (arg == "--spin") {
      if (inline_value) throw InputError("--spin takes no value");
      options.spin = true;
    } else if (arg.rfind("-", 0) == 0 && arg.size() > 1) {
      throw InputError("unknown option " + arg + " (see --help)");
    } else if (options.bundle.empty()) {
      options.bundle = arg;
    } else {
      throw InputError("unexpected argument '" + arg + "': give one BUNDLE folder, inputs with --input");
    }
  }
  if (options.help) return options;
  if (options.bundle.empty()) throw InputError("no BUNDLE folder given (see --help)");
  if (options.inputs.empty()) throw InputError("no --input given");
  if (duration_given && !rate_given) throw InputError("--duration needs --rate");
  if (iters_given && rate_given) throw InputError("--iters and --rate exclude each other: rate mode runs for --duration");
  return options;
}

}  // namespace edgekit
