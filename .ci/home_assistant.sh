#!/usr/bin/env bash
# Install Home Assistant 2024.3.3 (the last release that runs on Python 3.11) into its own virtual
# environment, cached outside the clone so later CI runs reuse it. Prints the venv's python path
# on stdout (the last line); progress goes to stderr.
#   .ci/home_assistant.sh            install if missing, then warm up (HA installs the requirements
#                                    of its core integrations on first start; later starts are offline)
# Environment: DSRTER_HA_VENV overrides the venv folder; PYTHON the interpreter that creates it.
set -euo pipefail
cd "$(dirname "$0")/.."
HA_VERSION=2024.3.3
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/dsrter-ci"
VENV="${DSRTER_HA_VENV:-$CACHE/ha-$HA_VERSION}"
PY="${PYTHON:-python3}"
say() { echo "[home-assistant] $*" >&2; }

if [ ! -f "$VENV/.ready" ]; then
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  say "creating $VENV (homeassistant==$HA_VERSION)"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >&2
  # josepy 2 and paho-mqtt 2 broke this release's imports; pin what it was built against.
  "$VENV/bin/pip" install -q "homeassistant==$HA_VERSION" "josepy<2" "paho-mqtt==1.6.1" >&2
  # First start with pip enabled: Home Assistant installs its default integrations' requirements
  # (frontend, MQTT, recorder ...). It can fail once on a slow index; try twice.
  ok=0
  for attempt in 1 2; do
    say "warm-up start $attempt (installs the core integrations' requirements)"
    if "$PY" tests/ha_harness.py --warm-up "$VENV/bin/python" >&2; then
      ok=1; break
    fi
  done
  [ "$ok" -eq 1 ] || { say "Home Assistant did not start; see the log above"; exit 1; }
  touch "$VENV/.ready"
fi
echo "$VENV/bin/python"
