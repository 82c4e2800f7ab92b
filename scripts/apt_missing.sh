# Sourced by the setup scripts: install the Debian packages whose probe fails, and only those.
#   install_missing TAG PACKAGE PROBE [PACKAGE PROBE ...]
# PROBE is a shell command that succeeds when PACKAGE's tool is already there.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_missing() {
  local tag=$1
  shift
  local missing=()
  while [ $# -gt 0 ]; do
    eval "$2" >/dev/null 2>&1 || missing+=("$1")
    shift 2
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[$tag] installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "[$tag] all packages present"
  fi
}
