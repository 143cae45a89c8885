#!/usr/bin/env bash
# Proves that the runtime install resolves from wheels alone on Raspberry Pi OS: every package in
# requirements/runtime.txt has a wheel for Linux aarch64, CPython 3.11, 3.12 and 3.13, tagged
# manylinux_2_28 or older (Bookworm has glibc 2.36, Trixie 2.41), and the lock is closed under
# dependencies (except opensmile's, installed with --no-deps on purpose: INSTALLED_WITHOUT_DEPS in
# .ci/aarch64_wheels.py says why) and agrees with pyproject.toml. Prints one row per package; exits non-zero when a
# wheel is missing or the lock is inconsistent (1) or pip cannot reach the index (2). Needs the
# package index, no Pi. Takes about a minute: pip fetches each aarch64 wheel
# into its temporary folder and keeps nothing; the three Pythons are checked at once.
#   .ci/check_aarch64.sh                      # the defaults above
#   .ci/check_aarch64.sh --python 3.11        # one Python; see --help for the other options
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-${DSRTER_VENV:-.venv}/bin/python}"
[ -x "$PY" ] || PY=python3
exec nice -n 10 "$PY" .ci/aarch64_wheels.py "$@"
