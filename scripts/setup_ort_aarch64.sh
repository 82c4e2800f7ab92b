#!/usr/bin/env bash
# Build an aarch64 CPython 3.11 with ONNX Runtime that runs under qemu-aarch64 on this x86 host:
#   ${EDGEKIT_CACHE:-~/.cache/edgekit}/ort-aarch64/
#     sysroot/  Debian 12 arm64 packages, unpacked with `apt-get download` + `dpkg -x` (no dpkg database,
#               nothing installed on the host): glibc, libstdc++, python3.11 and its stdlib's libraries;
#               plus sysroot/proc/cpuinfo describing one Cortex-A76 core.
#     site/     the aarch64 wheels onnxruntime 1.31.1, numpy 2.4.6 and their dependencies, unzipped (PYTHONPATH).
#     .complete what was built ("python3.11 onnxruntime==1.31.1 numpy==2.4.6"), written last.
# Why: `edgekit estimate` runs ONNX Runtime's aarch64 build side by side with the compiled model, both under
# qemu-aarch64 with the instruction-counting TCG plugin, so the model's estimate has a reference (see
# edgekit/measure/estimate.py, which runs sysroot/usr/bin/python3.11 with PYTHONPATH=site, no other PYTHON*).
# ONNX Runtime picks its aarch64 kernels (dot-product sdot/udot, ...) from /proc/cpuinfo; qemu-user's
# `-L sysroot` makes the guest's open("/proc/cpuinfo") read sysroot/proc/cpuinfo, so the file says what
# `-cpu cortex-a76` emulates (implementer 0x41, part 0xd0b, asimddp).
# Run it:
#   PYTHONPATH=$DIR/site qemu-aarch64 -cpu cortex-a76 -L $DIR/sysroot $DIR/sysroot/usr/bin/python3.11 -c 'import onnxruntime'
# No PYTHONHOME is needed: the interpreter finds sysroot/usr/lib/python3.11 from its own path.
# Needs: qemu-user (installed if missing, as scripts/setup_cross.sh does), arm64 in dpkg's architectures (added
# if missing: root or sudo), network to Debian's mirror and PyPI, and the repository's venv with onnx
# (scripts/setup.sh) for the self-check's model.
# Idempotent: an existing copy whose .complete names these versions and that passes the self-check is kept as
# it is; otherwise a new one is built in a temporary folder next to it and renamed into place only once it
# passes, so a failed run leaves nothing.
set -euo pipefail

source "$(dirname "$0")/apt_missing.sh"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${EDGEKIT_VENV:-$ROOT/.venv}
CACHE=${EDGEKIT_CACHE:-$HOME/.cache/edgekit}
DIR=$CACHE/ort-aarch64
ORT_VERSION=1.31.1
NUMPY_VERSION=2.4.6
# python3.11 with the libraries its stdlib's extension modules link (the arm64 "Depends" closure of
# python3.11 and libstdc++6 that is arm64-only: arch-all packages such as tzdata are left out), and
# libstdc++6/libgcc-s1 for ONNX Runtime. numpy brings its own OpenBLAS and libgfortran in numpy.libs/.
# libacl1, libselinux1, libpcre2-8-0, libmd0 and libzstd1 are not needed by Python: they complete the closure
# as the hand-made first copy had it (through dpkg and tar).
DEBS=(
  libc6 libgcc-s1 libstdc++6
  python3.11 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
  zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libcrypt1 libdb5.3 libsqlite3-0 libuuid1
  libncursesw6 libtinfo6 libreadline8 libnsl2 libtirpc3
  libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2
  libacl1 libselinux1 libpcre2-8-0 libmd0 libzstd1
)
STAMP="python3.11 onnxruntime==$ORT_VERSION numpy==$NUMPY_VERSION"
QEMU=(qemu-aarch64 -cpu cortex-a76)

install_missing setup_ort_aarch64 \
  qemu-user "command -v qemu-aarch64" \
  unzip "command -v unzip"

# guest DIR CODE [ARGS...]: CODE in DIR's aarch64 Python under qemu, with the environment estimate.py gives it.
guest() {
  local dir=$1
  shift
  (
    for v in $(compgen -e); do case $v in PYTHON*) unset "$v" ;; esac; done
    export PYTHONPATH=$dir/site PYTHONNOUSERSITE=1
    [ -z "${GUEST_NO_PYC:-}" ] || export PYTHONDONTWRITEBYTECODE=1
    "${QEMU[@]}" -L "$dir/sysroot" "$dir/sysroot/usr/bin/python3.11" -c "$@"
  )
}

work=$(mktemp -d)
build=""
trap 'rm -rf "$work" ${build:+"$build"}' EXIT

# The self-check: the pinned versions import, and a tiny model (a float MatMul and an int8 MatMulInteger, which
# takes the dot-product kernels on a core with asimddp) gives numpy's answer under qemu.
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import onnx" 2>/dev/null; then
  echo "[setup_ort_aarch64] no onnx in $VENV (the self-check's model): run scripts/setup.sh first" >&2
  exit 1
fi
"$VENV/bin/python" - "$work/check.onnx" <<'EOF'
import sys
import onnx
from onnx import TensorProto, helper

graph = helper.make_graph(
    [helper.make_node("MatMul", ["a", "b"], ["y"]), helper.make_node("MatMulInteger", ["qa", "qb"], ["qy"])],
    "edgekit_ort_aarch64_check",
    [helper.make_tensor_value_info("a", TensorProto.FLOAT, [8, 32]), helper.make_tensor_value_info("b", TensorProto.FLOAT, [32, 16]),
     helper.make_tensor_value_info("qa", TensorProto.UINT8, [8, 64]), helper.make_tensor_value_info("qb", TensorProto.INT8, [64, 16])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 16]), helper.make_tensor_value_info("qy", TensorProto.INT32, [8, 16])],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
EOF
CHECK_CODE=$(cat <<EOF
import sys, numpy, onnxruntime
print(onnxruntime.__version__, onnxruntime.get_available_providers())
assert (onnxruntime.__version__, numpy.__version__) == ("$ORT_VERSION", "$NUMPY_VERSION"), (onnxruntime.__version__, numpy.__version__)
rng = numpy.random.default_rng(0)
feeds = {"a": rng.standard_normal((8, 32), dtype=numpy.float32), "b": rng.standard_normal((32, 16), dtype=numpy.float32),
         "qa": rng.integers(0, 256, (8, 64), dtype=numpy.uint8), "qb": rng.integers(-128, 128, (64, 16), dtype=numpy.int8)}
y, qy = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"]).run(None, feeds)
err = float(numpy.abs(y - feeds["a"] @ feeds["b"]).max())
assert err < 1e-4, f"MatMul differs from numpy by {err}"
assert (qy == feeds["qa"].astype(numpy.int32) @ feeds["qb"].astype(numpy.int32)).all(), "MatMulInteger differs from numpy"
print(f"model ok: MatMul 8x32x16 max |error| {err:.2e}, MatMulInteger u8*s8 exact")
EOF
)
check() { guest "$1" "$CHECK_CODE" "$work/check.onnx"; }

report() { echo "[setup_ort_aarch64] ready: $(tr '\n' ';' <<<"$1" | sed 's/;$//; s/;/; /g')"; }
# An existing copy is only read: no .pyc files written into it.
if [ "$(cat "$DIR/.complete" 2>/dev/null)" = "$STAMP" ] && out=$(GUEST_NO_PYC=1 check "$DIR" 2>&1); then
  echo "[setup_ort_aarch64] $DIR already works"
  report "$out"
  exit 0
fi

mkdir -p "$CACHE"
build=$(mktemp -d "$CACHE/.ort-aarch64.tmp.XXXXXX")
mkdir -p "$build/sysroot/proc" "$build/site" "$work/debs" "$work/wheels"

# apt downloads arm64 packages only where arm64 is one of dpkg's architectures and its lists were fetched.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "[setup_ort_aarch64] adding arm64 to dpkg's architectures"
  as_root dpkg --add-architecture arm64
  as_root apt-get update -qq
elif [ -z "$(apt-cache policy libc6:arm64 2>/dev/null | sed -n 's/^ *Candidate: *//p' | grep -v none)" ]; then
  as_root apt-get update -qq
fi

echo "[setup_ort_aarch64] downloading ${#DEBS[@]} Debian arm64 packages"
# As root, apt drops to the _apt user for downloads, which cannot write to mktemp's private folder.
apt_opts=()
[ "$(id -u)" != 0 ] || apt_opts=(-o APT::Sandbox::User=root)
(cd "$work/debs" && apt-get download -qq "${apt_opts[@]}" "${DEBS[@]/%/:arm64}")
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$build/sysroot"; done

# One Cortex-A76 core, as `-cpu cortex-a76` emulates it (an RK3588 big core's /proc/cpuinfo entry).
cat >"$build/sysroot/proc/cpuinfo" <<'EOF'
processor	: 0
BogoMIPS	: 48.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x4
CPU part	: 0xd0b
CPU revision	: 0

EOF

echo "[setup_ort_aarch64] downloading the aarch64 wheels onnxruntime==$ORT_VERSION numpy==$NUMPY_VERSION"
"$VENV/bin/python" -m pip download -q --disable-pip-version-check --only-binary=:all: \
  --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 \
  --python-version 3.11 --implementation cp --abi cp311 \
  -d "$work/wheels" "onnxruntime==$ORT_VERSION" "numpy==$NUMPY_VERSION"
for whl in "$work"/wheels/*.whl; do
  if unzip -Z1 "$whl" | grep -q '^[^/]*\.data/'; then
    echo "[setup_ort_aarch64] $(basename "$whl") has a .data folder, which unzipping does not install" >&2
    exit 1
  fi
  unzip -q -o "$whl" -d "$build/site"
done

echo "[setup_ort_aarch64] checking the new copy under qemu"
GUEST_NO_PYC=1 check "$build" >/dev/null || { echo "[setup_ort_aarch64] the new copy fails its self-check" >&2; exit 1; }
echo "$STAMP" >"$build/.complete"
if [ -e "$DIR" ]; then
  # An old copy of other versions, or one that failed the check: swap it out only now that its replacement works.
  mv "$DIR" "$build.old"
  mv "$build" "$DIR"
  rm -rf "$build.old"
else
  mv "$build" "$DIR"
fi
build=""
echo "[setup_ort_aarch64] built $DIR: sysroot $(du -sh "$DIR/sysroot" | cut -f1), site $(du -sh "$DIR/site" | cut -f1)"
report "$(check "$DIR")"
