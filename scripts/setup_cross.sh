#!/usr/bin/env bash
# Install the tools the on-device runner needs on a Debian 12 build machine:
#   - aarch64 cross compiler and libc (arm64 / rk3588 / orin builds),
#   - qemu-user to run aarch64 binaries here (tests),
#   - cmake (the runner's build),
#   - clang with libFuzzer (scripts/fuzz_runner.sh),
#   - llvm-19's llvm-mc and llvm-mca (`edgekit estimate` times basic blocks on a core's model;
#     19 has the Neoverse-N1 model that stands for the Cortex-A76).
# Idempotent: installs only what is missing, then checks that every tool works.
set -euo pipefail

source "$(dirname "$0")/apt_missing.sh"

# Debian 12's clang-14 does not depend on the compiler-rt package: the libFuzzer, ASan and UBSan
# runtimes (libclang_rt.fuzzer-x86_64.a, ...) are in libclang-rt-14-dev, not libclang-common-14-dev.
install_missing setup_cross \
  g++-aarch64-linux-gnu "command -v aarch64-linux-gnu-g++" \
  libc6-dev-arm64-cross "test -e /usr/aarch64-linux-gnu/lib/libc.so.6" \
  qemu-user "command -v qemu-aarch64" \
  cmake "command -v cmake" \
  clang "command -v clang" \
  libclang-rt-14-dev 'test -n "$(ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)"' \
  llvm-19 "command -v llvm-mca-19"

# Check the tools really work, not only that they are installed.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/fuzz.cc" <<'EOF'
#include <cstddef>
#include <cstdint>
extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }
EOF
clang++ -fsanitize=fuzzer,address,undefined "$tmp/fuzz.cc" -o "$tmp/fuzz" \
  || { echo "[setup_cross] clang -fsanitize=fuzzer does not link: is libclang-rt-14-dev installed?" >&2; exit 1; }
printf 'int main() { return 0; }\n' >"$tmp/hello.cc"
aarch64-linux-gnu-g++ "$tmp/hello.cc" -o "$tmp/hello"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$tmp/hello"
printf 'sdot v0.4s, v1.16b, v2.16b\n' | llvm-mca-19 -mtriple=aarch64-linux-gnu -mcpu=neoverse-n1 -mattr=+dotprod >/dev/null \
  || { echo "[setup_cross] llvm-mca-19 cannot time an sdot on neoverse-n1" >&2; exit 1; }
echo "[setup_cross] ready: $(aarch64-linux-gnu-g++ --version | head -1); $(qemu-aarch64 --version | head -1); $(cmake --version | head -1); $(clang --version | head -1) with libFuzzer"
