#!/usr/bin/env bash
# The runtime on emulated aarch64: Debian 12 arm64 (the base of Raspberry Pi OS Bookworm) under
# qemu-user, the runtime installed there by `./setup.sh deps` (the same steps as on a Pi), then
# `dsrter analyze --no-video` on one clip under each CPU model (cortex-a72 = Raspberry Pi 4,
# cortex-a76 = Pi 5), compared with the x86 run of the same clip by .ci/compare_timelines.py
# (identical labels except at near-ties, scores within its tolerances). All three runs use
# config.yaml with smoothing off (hysteresis makes a label depend on its whole history).
# Exit 0 all agree, 1 a run failed or labels differ, 2 cannot run here (not root, no x86-64 Debian).
#   .ci/pi_emulate.sh [CLIP]
#   PI_CPUS="cortex-a72 cortex-a76"  CPU models;  PI_PARALLEL=0  one after the other (default: at once,
#   measured faster on 2 cores: 256 s against 211 + 137 s)
# Cached in ${DSRTER_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dsrter-ci}: the arm64 root (rebuilt when
# setup.sh's Debian package list changes), its venv and the lock's aarch64 wheels (both rebuilt
# when pyproject.toml, requirements/runtime.txt or setup.sh change). Each phase prints its wall and
# CPU time. Emulation is 100-300x slower than
# the host: the timings printed say nothing about a Pi.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CLIP=$(realpath -m "${1:-../shared/data/av-samples/clip06_face-neutral_speech-surprise.mp4}")
CPUS=${PI_CPUS:-cortex-a72 cortex-a76}
CACHE=${DSRTER_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dsrter-ci}
R=$CACHE/arm64-bookworm
export DEBIAN_FRONTEND=noninteractive
say() { printf '[pi-emulate] %s\n' "$*" >&2; }
# CPU seconds (user + system) of every finished child process, from `times` written to $TIMES
# (`times` itself must run in this shell: in a $(...) subshell the children's times start at zero)
cpu_read() {
  awk 'function s(x) { sub(/s$/, "", x); split(x, p, "m"); return p[1] * 60 + p[2] }
       NR == 2 { printf "%d\n", s($1) + s($2) }' "$TIMES"
}
T0=$(date +%s); PT=$T0; PC=0; PHASES=()
phase() {  # close the running phase (prints its wall and CPU time), name the next one
  local now c; now=$(date +%s); times > "$TIMES"; c=$(cpu_read)
  if [ -n "${PNAME:-}" ]; then
    say "$PNAME: $((now - PT)) s wall, $((c - PC)) s CPU"
    PHASES+=("$PNAME: $((now - PT))/$((c - PC)) s;")
  fi
  PNAME=$1; PT=$now; PC=$c; [ -n "$1" ] && say "$1 ..."
}

[ "$(id -u)" -eq 0 ] || { say "needs root (chroot, mounts, binfmt_misc); not run"; exit 2; }
[ "$(uname -m)" = x86_64 ] && [ -r /etc/debian_version ] || { say "needs an x86-64 Debian host; not run"; exit 2; }
[ -f "$CLIP" ] || { say "clip not found: $CLIP"; exit 2; }
PY=${DSRTER_VENV:-.venv}/bin/python
[ -x "$PY" ] || { say "no x86 runtime venv at ${DSRTER_VENV:-.venv} for the reference run (./setup.sh deps makes it)"; exit 2; }
mkdir -p "$CACHE"
# One run at a time per cache (the root's mounts and /opt/dsrter are shared).
exec 9>"$CACHE/arm64-bookworm.lock"
flock -w 3600 9 || { say "another run holds $CACHE/arm64-bookworm.lock"; exit 1; }

unmount_all() {  # everything mounted below the root, deepest first (also what a killed run left)
  local m
  for m in $(awk -v r="$R/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m"; done
  ! awk -v r="$R/" 'index($2, r) == 1 {f=1} END {exit !f}' /proc/mounts
}
WORK=$(mktemp -d); TIMES=$WORK/times
trap 'unmount_all; rm -rf "$WORK"' EXIT
unmount_all || { say "cannot unmount what is mounted below $R"; exit 1; }

# 1. qemu >= 8.2 (it emulates /proc/cpuinfo for the guest; with 7.2 LiteRT's cpuinfo segfaults on the
#    host's x86 one): bookworm-backports' build.
phase "qemu-user"
MIRROR=${MIRROR:-$(grep -hoE "^(URIs:|deb) +[^ ]+" /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
  | awk '{print $2}' | grep -m1 -i debian)}
qemu_ok() { command -v qemu-aarch64-static >/dev/null && qemu-aarch64-static --version | head -1 \
  | awk '{split($3, v, "."); exit !(v[1] > 8 || (v[1] == 8 && v[2] >= 2))}'; }
if ! qemu_ok || ! command -v debootstrap >/dev/null; then
  say "installing qemu-user-static (bookworm-backports) and debootstrap"
  echo "deb $MIRROR bookworm-backports main" > /etc/apt/sources.list.d/dsrter-ci-backports.list
  { apt-get update -qq && apt-get install -y -qq -t bookworm-backports qemu-user-static >/dev/null \
    && apt-get install -y -qq debootstrap >/dev/null; } || { say "apt-get install failed"; exit 1; }
  qemu_ok || { say "qemu-aarch64-static is older than 8.2"; exit 1; }
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || ! grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64
  # its F flag: the interpreter is opened now, so the chroot needs no copy of it
  cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register \
    || { say "cannot register qemu-aarch64 with binfmt_misc"; exit 1; }
fi
say "$(qemu-aarch64-static --version | head -1)"

# 2. arm64 root with what setup.sh installs from Debian (its APT_PACKAGES) plus python3-venv
APT=$(sed -n 's/^APT_PACKAGES=(\([^)]*\)).*/\1/p' setup.sh)
INCLUDE=$(echo python3 python3-venv ca-certificates $APT | tr ' ' ',')
phase "arm64 root"
if [ "$(cat "$R/.dsrter-root-ok" 2>/dev/null)" != "$INCLUDE" ]; then
  say "debootstrap arm64 bookworm with $INCLUDE"
  rm -rf "$R"
  debootstrap --arch=arm64 --variant=minbase --include="$INCLUDE" bookworm "$R" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; say "debootstrap failed"; exit 1; }
  echo "$INCLUDE" > "$R/.dsrter-root-ok"
fi

# 3. mounts (undone on exit), network and pip set-up, a copy of the working tree
bindm() { mkdir -p "$R$2" && mount --bind "$1" "$R$2"; }
bindm /proc /proc && bindm /dev /dev && bindm /sys /sys || { say "bind mounts failed"; exit 1; }
cp /etc/resolv.conf "$R/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt"
rm -rf "$R/opt/dsrter" "$R/out" && mkdir -p "$R/opt/dsrter" "$R/out"
# the files git tracks or would track (uncommitted edits included; runs/, venvs and caches left out)
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -C "$R/opt/dsrter" -xf -
else
  tar -C "$REPO" --exclude='./.venv*' --exclude=./.git --exclude=./runs -cf - . | tar -C "$R/opt/dsrter" -xf -
fi
cp "$CLIP" "$R/clip.mp4"
# config.yaml with every smoother off: labels are the per-classification top classes
"$PY" - "$R/opt/dsrter/ci-unsmoothed.yaml" <<'PYEOF' || { say "cannot write the unsmoothed config"; exit 1; }
import sys
import yaml
cfg = yaml.safe_load(open("config.yaml"))
for stream in ("face", "speech"):
    cfg[stream]["smoothing"] = {"alpha": 1.0, "hysteresis": 0.0, "min_hold": 1}
cfg["fusion"]["hysteresis"] = 0.0
yaml.safe_dump(cfg, open(sys.argv[1], "w"), sort_keys=False)
PYEOF
# PIP_ONLY_BINARY: every dependency must come as an aarch64 wheel, nothing may compile.
# PIP_NO_COMPILE: no byte-compiling of every installed module under emulation (Python writes the
# .pyc of the modules it imports on first use)
CH=(chroot "$R" /usr/bin/env -i PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_ONLY_BINARY=:all:
    PIP_NO_COMPILE=1)

# 4. the lock's aarch64 wheels (Bookworm: CPython 3.11, glibc 2.36), fetched by the host's pip: pip
#    under emulation is slow, and the index reset its connections in every try here. Then the runtime
#    as setup.sh installs it, from those wheels only (a fresh venv and wheel folder whenever the
#    inputs change, so that nothing dropped from the lock stays behind).
stamp=$(cat pyproject.toml requirements/runtime.txt setup.sh | sha256sum | cut -c1-16)
WH=$CACHE/wheels-aarch64-cp311
phase "aarch64 wheels of the lock (host pip download)"
if [ "$(cat "$WH/.dsrter-ci" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$WH"
  plats=(--platform any); for g in $(seq 17 36); do plats+=(--platform "manylinux_2_${g}_aarch64"); done
  "$PY" -m pip download -q --no-deps --only-binary :all: --implementation cp --python-version 3.11 \
      --abi cp311 --abi abi3 --abi none "${plats[@]}" -r requirements/runtime.txt pip "setuptools>=77" -d "$WH" \
      2>&1 | grep -v '^WARNING: Location' >&2
  [ "${PIPESTATUS[0]}" -eq 0 ] || { say "pip download of the lock's aarch64 wheels failed"; exit 1; }
  echo "$stamp" > "$WH/.dsrter-ci"
fi
bindm "$WH" /wheels || { say "bind mount of the wheels failed"; exit 1; }
phase "arm64 runtime venv (./setup.sh deps)"
if [ "$(cat "$R/opt/venv/.dsrter-ci" 2>/dev/null)" != "$stamp" ]; then
  say "inputs changed or no venv yet: a fresh one"
  rm -rf "$R/opt/venv"
fi
setup_deps() { "${CH[@]}" DSRTER_VENV=/opt/venv PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels /bin/sh -c 'cd /opt/dsrter && ./setup.sh deps' >"$WORK/setup.log" 2>&1; }
setup_deps || { tail -20 "$WORK/setup.log" >&2; say "./setup.sh deps failed in the arm64 root"; exit 1; }
# pip check: only opensmile's Python-side requirements may be missing (installed --no-deps on purpose: the
# runtime uses its native library alone; .ci/check_aarch64.sh says why)
bad=$("${CH[@]}" pip check 2>&1 | grep -v '^opensmile [0-9.]* requires ' | grep -v '^No broken requirements')
[ -z "$bad" ] || { echo "$bad" >&2; say "the arm64 venv is inconsistent (pip check)"; exit 1; }
echo "$stamp" > "$R/opt/venv/.dsrter-ci"
say "arm64 venv: $("${CH[@]}" python -c 'import platform; print(platform.python_version(), platform.machine())'), $(du -sm "$R/opt/venv" | cut -f1) MB"

# 5. x86 reference, then each CPU model
phase "x86-64 reference run"
"$PY" -m dsrter.edge.cli analyze "$CLIP" -c "$R/opt/dsrter/ci-unsmoothed.yaml" --out "$WORK/x86" --no-video --no-progress >"$WORK/x86.log" 2>&1 \
  || { tail -5 "$WORK/x86.log" >&2; say "x86 analyze failed"; exit 1; }
emulate() {  # $1: CPU model; exit status of dsrter analyze
  "${CH[@]}" QEMU_CPU="$1" nice -n 10 /bin/sh -c \
    "cd /opt/dsrter && dsrter analyze /clip.mp4 -c ci-unsmoothed.yaml --out /out/$1 --no-video --no-progress" >"$WORK/$1.log" 2>&1
  echo $? > "$WORK/$1.rc"
}
if [ "${PI_PARALLEL:-1}" = 1 ]; then
  phase "aarch64 $CPUS at once"
  for cpu in $CPUS; do emulate "$cpu" & done
  wait
else
  for cpu in $CPUS; do phase "aarch64 $cpu"; emulate "$cpu"; done
fi
phase ""
rc=0
for cpu in $CPUS; do
  code=$(cat "$WORK/$cpu.rc")
  if [ "$code" -ne 0 ]; then
    tail -8 "$WORK/$cpu.log" >&2
    # 132 = 128 + SIGILL: an instruction the CPU model lacks (see docs/raspberry-pi.md)
    say "$cpu: dsrter analyze FAILED (exit $code$([ "$code" -eq 132 ] && echo ', SIGILL'))"; rc=1; continue
  fi
  printf '[pi-emulate] %s: ' "$cpu" >&2
  python3 .ci/compare_timelines.py "$WORK/x86/timeline.jsonl" "$R/out/$cpu/timeline.jsonl" >&2 || rc=1
done
say "phases (wall/CPU): ${PHASES[*]}"
times > "$TIMES"
say "done in $(( $(date +%s) - T0 )) s wall, $(cpu_read) s CPU: $([ $rc -eq 0 ] && echo 'every CPU model gives the x86 labels' || echo FAILED)"
exit $rc
