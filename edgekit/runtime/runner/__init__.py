"""The on-device runner: `edgekit-runner`, a C++ program that runs an artifact with the TVM
runtime alone (no Python on the device). `build_runner` compiles it for a target."""

from edgekit.runtime.runner.runner_build import RunnerBuild, build_runner

__all__ = ["RunnerBuild", "build_runner"]
