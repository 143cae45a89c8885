#!/usr/bin/env bash
# The runtime on emulated aarch64: Debian 12 arm64 (the base of Raspberry Pi OS Bookworm) under
# qemu-user, the runtime lock installed from wheels, `dsrter analyze` on one clip under each CPU
# model (cortex-a72 = Raspberry Pi 4, cortex-a76 = Pi 5), labels compared with the x86 run of the
# same clip (.ci/compare_timelines.py: identical labels, confidences within its tolerances).
# Exit 0 all agree, 1 a run failed or labels differ, 2 cannot run here (not root, no x86-64 Debian).
#   .ci/pi_emulate.sh [CLIP]            CPUs: PI_CPUS="cortex-a72 cortex-a76"
# Cached between runs in ${DSRTER_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dsrter-ci}: the arm64
# root with its venv (rebuilt when requirements/runtime.txt changes) and pip's wheel cache.
# Emulation is 100-300x slower than the host: timings say nothing about a Pi.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CLIP=$(realpath "${1:-../shared/data/av-samples/clip03_face-happy_speech-happy.mp4}")
CPUS=${PI_CPUS:-cortex-a72 cortex-a76}
CACHE=${DSRTER_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dsrter-ci}
R=$CACHE/arm64-bookworm
WORK=$(mktemp -d)
export DEBIAN_FRONTEND=noninteractive
say() { printf '[pi-emulate] %s\n' "$*" >&2; }
t0=$(date +%s)
el() { echo "$(( $(date +%s) - t0 ))s"; }

[ "$(id -u)" -eq 0 ] || { say "needs root (chroot, mounts, binfmt_misc); skipped"; exit 2; }
[ "$(uname -m)" = x86_64 ] && [ -r /etc/debian_version ] || { say "needs an x86-64 Debian host; skipped"; exit 2; }
[ -f "$CLIP" ] || { say "clip not found: $CLIP"; exit 2; }
mkdir -p "$CACHE/pip"

# 1. qemu >= 8.2 (it emulates /proc/cpuinfo for the guest; with 7.2 LiteRT's cpuinfo segfaults on the
#    host's x86 one): bookworm-backports' build.
MIRROR=${MIRROR:-$(grep -hoE "^(URIs:|deb) +[^ ]+" /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
  | awk '{print $2}' | grep -m1 -i debian)}
qemu_ok() { command -v qemu-aarch64-static >/dev/null && qemu-aarch64-static --version | head -1 \
  | awk '{split($3, v, "."); exit !(v[1] > 8 || (v[1] == 8 && v[2] >= 2))}'; }
if ! qemu_ok || ! command -v debootstrap >/dev/null; then
  say "installing qemu-user-static (bookworm-backports) and debootstrap"
  echo "deb $MIRROR bookworm-backports main" > /etc/apt/sources.list.d/dsrter-ci-backports.list
  apt-get update -qq && apt-get install -y -qq -t bookworm-backports qemu-user-static >/dev/null \
    && apt-get install -y -qq debootstrap >/dev/null || { say "apt-get install failed"; exit 1; }
  qemu_ok || { say "qemu-aarch64-static is older than 8.2"; exit 1; }
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64
# its F flag: the interpreter is opened now, so the chroot needs no copy of it
cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register \
  || { say "cannot register qemu-aarch64 with binfmt_misc"; exit 1; }

# 2. arm64 root: only what the runtime needs from Debian (python3-venv, libportaudio2)
if [ ! -f "$R/.dsrter-root-ok" ]; then
  say "debootstrap arm64 bookworm into the cache ($(el))"
  rm -rf "$R"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates,libportaudio2 \
    bookworm "$R" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; say "debootstrap failed"; exit 1; }
  touch "$R/.dsrter-root-ok"
fi

# 3. mounts (undone on exit), network and pip set-up, a copy of the working tree
mounts=()
bindm() { mkdir -p "$R$2"; mount --bind "$1" "$R$2" && mounts=("$2" "${mounts[@]}"); }
cleanup() { for m in "${mounts[@]}"; do umount -l "$R$m" 2>/dev/null; done; rm -rf "$WORK"; }
trap cleanup EXIT
bindm /proc /proc; bindm /dev /dev; bindm /sys /sys; bindm "$CACHE/pip" /root/.cache/pip
cp /etc/resolv.conf "$R/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt"
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$R/etc/pip.conf"
rm -rf "$R/opt/dsrter" "$R/out" && mkdir -p "$R/opt/dsrter"
tar -C "$REPO" --exclude=./.venv --exclude=./.git -cf - . | tar -C "$R/opt/dsrter" -xf -
cp "$CLIP" "$R/clip.mp4"
CH=(chroot "$R" /usr/bin/env -i PATH=/opt/venv/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt)

# 4. the runtime lock from aarch64 wheels (--only-binary: nothing may compile)
lock=$(cat requirements/runtime.txt pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$R/opt/venv/.lock" 2>/dev/null)" != "$lock" ]; then
  say "installing the runtime lock into the arm64 venv ($(el))"
  rm -rf "$R/opt/venv"
  "${CH[@]}" python3 -m venv /opt/venv || { say "venv failed"; exit 1; }
  "${CH[@]}" /opt/venv/bin/pip install -q --only-binary :all: -r /opt/dsrter/requirements/runtime.txt \
    || { say "pip install of the runtime lock failed"; exit 1; }
  echo "$lock" > "$R/opt/venv/.lock"
fi
"${CH[@]}" /opt/venv/bin/pip install -q --no-deps --no-build-isolation -e /opt/dsrter >/dev/null 2>&1 \
  || "${CH[@]}" /opt/venv/bin/pip install -q --no-deps -e /opt/dsrter || { say "pip install of dsrter failed"; exit 1; }
"${CH[@]}" /opt/venv/bin/pip check >/dev/null || { say "the arm64 venv is inconsistent (pip check)"; exit 1; }

# 5. x86 reference, then each CPU model
PY=${DSRTER_VENV:-.venv}/bin/python
[ -x "$PY" ] || PY=python3
say "x86-64 reference run ($(el))"
"$PY" -m dsrter.edge.cli analyze "$CLIP" --out "$WORK/x86" --no-video --no-progress >"$WORK/x86.log" 2>&1 \
  || { tail -5 "$WORK/x86.log"; say "x86 analyze failed"; exit 1; }
rc=0
for cpu in $CPUS; do
  say "aarch64 $cpu: dsrter analyze ($(el))"
  if ! "${CH[@]}" QEMU_CPU="$cpu" /bin/sh -c "cd /opt/dsrter && dsrter analyze /clip.mp4 --out /out/$cpu --no-video --no-progress" \
      >"$WORK/$cpu.log" 2>&1; then
    tail -5 "$WORK/$cpu.log"; say "$cpu: dsrter analyze failed (exit above)"; rc=1; continue
  fi
  printf '[pi-emulate] %s: ' "$cpu" >&2
  python3 .ci/compare_timelines.py "$WORK/x86/timeline.jsonl" "$R/out/$cpu/timeline.jsonl" >&2 || rc=1
done
say "done in $(el): $([ $rc -eq 0 ] && echo 'every CPU model gives the x86 labels' || echo FAILED)"
exit $rc
