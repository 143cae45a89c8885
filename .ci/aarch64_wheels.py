"""Prove that the runtime lock installs from wheels on Raspberry Pi OS (Linux aarch64).

For each target Python (3.11 and 3.12, Raspberry Pi OS Bookworm's and the next one, and 3.13,
Raspberry Pi OS Trixie's, by default) this:

1. evaluates the lock's environment markers for Linux aarch64 + that Python, giving the exact
   set a Pi installs;
2. asks pip which wheel it would install for each pinned package, with nothing built from
   source: ``pip install --dry-run --no-deps --only-binary=:all: --platform manylinux_2_17_aarch64
   ... --platform manylinux_2_28_aarch64 --python-version X.Y --implementation cp --report``;
   every platform tag up to glibc 2.28 is listed because pip does not widen a manylinux tag to the
   older ones by itself (a check that names only manylinux2014 misses every manylinux_2_27 wheel,
   e.g. all ai-edge-litert 2.x); Raspberry Pi OS Bookworm has glibc 2.36, so manylinux_2_28 or
   older runs there and on anything newer;
3. checks that the lock is closed for that target: every dependency (with its markers evaluated
   for the target, not for this machine, which pip's own resolver would do) of every locked wheel
   is locked too, at a version the dependent accepts, and every dependency in pyproject.toml is
   locked at a version its range accepts. The one exception is ``INSTALLED_WITHOUT_DEPS``
   (opensmile, whose Python side the runtime does not use; the lock is installed with
   ``--no-deps``): its requirements are listed as left out, not required.

A package with no fitting wheel is listed as MISSING (pip stops at the first one, so the check
drops it and asks again until the rest resolve). Exit status: 0 all good, 1 a wheel is missing or
the lock is not closed/consistent, 2 pip could not answer (registry unreachable, ...).

Why ``--no-deps`` + our own closure check rather than ``pip download``: pip evaluates markers for
the machine it runs on even with ``--platform``/``--python-version``, and a full download fetches
~240 MB per Python for the same answer. ``--dry-run`` fetches each wheel once into pip's temporary
folder (the index serves no separate metadata files) and keeps nothing.

pip runs with the index's defaults: configuration files, find-links and extra indexes of the
machine are ignored (``--pip-config`` keeps them), so the answer is about the public index (or
``$PIP_INDEX_URL`` when set).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename
    from packaging.version import Version
except ImportError:  # pragma: no cover - a bare interpreter: use pip's copy
    from pip._vendor.packaging.requirements import Requirement  # type: ignore
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename  # type: ignore
    from pip._vendor.packaging.version import Version  # type: ignore

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    from pip._vendor import tomli as tomllib  # type: ignore

REPO = Path(__file__).resolve().parents[1]
OLDEST_GLIBC_MINOR = 17  # manylinux2014 == manylinux_2_17, the oldest tag aarch64 wheels use
# Locked packages installed with `pip install --no-deps` whose own requirements are deliberately not
# followed, with the reason (printed with the result). Every other package's requirements must be locked.
INSTALLED_WITHOUT_DEPS = {
    "opensmile": "the runtime uses only the native library and config files inside its wheel "
                 "(edge/infer/smile_api.py), not its Python side, whose requirements (audinterface, audobject, "
                 "and through them audformat, pandas, pyarrow, ...) would add ~260 MB (x86_64, du)",
}


def target_env(python: str, arch: str) -> dict[str, str]:
    """Marker variables of CPython ``python`` on Linux ``arch`` (what the Pi's interpreter reports)."""
    return {"implementation_name": "cpython", "implementation_version": f"{python}.0", "os_name": "posix",
            "platform_machine": arch, "platform_release": "", "platform_system": "Linux", "platform_version": "",
            "python_full_version": f"{python}.0", "platform_python_implementation": "CPython",
            "python_version": python, "sys_platform": "linux", "extra": ""}


def platform_tags(arch: str, glibc_max: int) -> list[str]:
    tags = [f"manylinux_2_{m}_{arch}" for m in range(glibc_max, OLDEST_GLIBC_MINOR - 1, -1)]
    return tags + [f"manylinux2014_{arch}"]


def read_lock(path: Path, env: dict[str, str]) -> dict[str, tuple[str, str]]:
    """canonical name -> (version, requirement text) for the lock lines whose markers hold in ``env``."""
    pins: dict[str, tuple[str, str]] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        if len(spec) != 1 or spec[0].operator != "==" or "*" in spec[0].version:
            raise SystemExit(f"{path}:{n}: '{line}' is not an exact pin (name==version)")
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        if name in pins:
            raise SystemExit(f"{path}:{n}: {req.name} is pinned twice for this target")
        pins[name] = (spec[0].version, f"{req.name}=={spec[0].version}")
    return pins


def project_requirements(env: dict[str, str]) -> list[Requirement]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = [Requirement(r) for r in data["project"]["dependencies"]]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(env)]


def pip_env(keep_config: bool) -> dict[str, str]:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    if not keep_config:
        env["PIP_CONFIG_FILE"] = os.devnull
        for k in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX", "PIP_REQUIREMENT",
                  "PIP_ONLY_BINARY", "PIP_NO_BINARY", "PIP_PREFER_BINARY", "PIP_TARGET", "PIP_USER"):
            env.pop(k, None)
    return env


NOT_FOUND = re.compile(r"(?:No matching distribution found for|Could not find a version that satisfies the "
                       r"requirement) ([A-Za-z0-9_.\-]+)")


@dataclass
class TargetResult:
    python: str
    pins: dict[str, tuple[str, str]]
    wheels: dict[str, dict] = field(default_factory=dict)  # name -> {"file", "version", "requires_dist", ...}
    missing: dict[str, str] = field(default_factory=dict)  # name -> pip's reason
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pip_error: str | None = None
    seconds: float = 0.0
    pip_runs: int = 0


def ask_pip(python: str, requirements: list[str], plats: list[str], keep_config: bool, tmp: Path) -> tuple[int, str, dict]:
    req_file = tmp / f"req-{python}.txt"
    req_file.write_text("\n".join(requirements) + "\n")
    report = tmp / f"report-{python}.json"
    report.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet",
           "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
           "--target", str(tmp / f"target-{python}"), "--report", str(report), "-r", str(req_file)]
    for p in plats:
        cmd += ["--platform", p]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=pip_env(keep_config), timeout=1800)
    data = json.loads(report.read_text()) if proc.returncode == 0 and report.exists() else {}
    return proc.returncode, proc.stderr, data


def check_target(python: str, args: argparse.Namespace, tmp: Path) -> TargetResult:
    t0 = time.monotonic()
    env = target_env(python, args.arch)
    res = TargetResult(python, read_lock(args.lock, env))
    plats = platform_tags(args.arch, args.glibc)
    todo = {name: text for name, (_, text) in res.pins.items()}
    while todo:
        rc, err, report = ask_pip(python, sorted(todo.values()), plats, args.pip_config, tmp)
        res.pip_runs += 1
        if rc == 0:
            for item in report.get("install", []):
                md = item["metadata"]
                res.wheels[canonicalize_name(md["name"])] = {
                    "version": md["version"], "file": item["download_info"]["url"].rsplit("/", 1)[-1],
                    "requires_dist": md.get("requires_dist") or [], "requires_python": md.get("requires_python")}
            break
        hit = NOT_FOUND.search(err)
        name = canonicalize_name(hit.group(1)) if hit else None
        if name not in todo:
            res.pip_error = err.strip()[-3000:] or f"pip exited with status {rc}"
            break
        reason = [ln.replace("ERROR: ", "").strip() for ln in err.splitlines() if "from versions" in ln]
        res.missing[name] = "; ".join(reason)[:300] or "no wheel"
        del todo[name]
    if res.pip_error is None:
        verify(res, env, plats, args.arch)
    res.seconds = time.monotonic() - t0
    return res


def _glibc_ok(filename: str, plats: set[str]) -> bool:
    _, _, _, tags = parse_wheel_filename(filename)
    return any(t.platform == "any" or t.platform in plats for t in tags)


def verify(res: TargetResult, env: dict[str, str], plats: list[str], arch: str) -> None:
    """Versions as pinned, tags as asked, the lock closed under dependencies, pyproject satisfied."""
    allowed = set(plats)
    for name, w in res.wheels.items():
        if name not in res.pins:
            res.problems.append(f"{name}: pip chose it but the lock does not pin it")
            continue
        want = res.pins[name][0]
        if Version(w["version"]) != Version(want):
            res.problems.append(f"{name}: pip chose {w['version']}, the lock pins {want}")
        if not _glibc_ok(w["file"], allowed):
            res.problems.append(f"{name}: {w['file']} is not a manylinux_2_{plats[0].split('_')[2]}-or-older {arch} wheel")
    # dependencies of every locked wheel, markers evaluated for the target (extras followed)
    seen: set[tuple[str, str]] = set()
    queue = [(name, "") for name in res.wheels]
    while queue:
        name, extra = queue.pop()
        if (name, extra) in seen or name not in res.wheels:
            continue
        seen.add((name, extra))
        if name in INSTALLED_WITHOUT_DEPS:
            continue
        for text in res.wheels[name]["requires_dist"]:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(dict(env, extra=extra)):
                continue
            dep = canonicalize_name(req.name)
            if dep not in res.pins:
                if dep not in res.missing:
                    res.problems.append(f"{dep}: needed by {name} ({text}) but not in the lock for this target")
                continue
            if not req.specifier.contains(res.pins[dep][0], prereleases=True):
                res.problems.append(f"{dep}: the lock pins {res.pins[dep][0]} but {name} needs '{req.specifier}'")
            queue.append((dep, ""))
            queue.extend((dep, canonicalize_name(e)) for e in req.extras)
    roots = project_requirements(env)
    for req in roots:
        dep = canonicalize_name(req.name)
        if dep not in res.pins:
            res.problems.append(f"{dep}: a dependency in pyproject.toml but not in the lock")
        elif not req.specifier.contains(res.pins[dep][0], prereleases=True):
            res.problems.append(f"{dep}: the lock pins {res.pins[dep][0]} outside pyproject.toml's '{req.specifier}'")
    # what pyproject's dependencies pull in on this target; anything else in the lock is dead weight
    needed = {canonicalize_name(r.name) for r in roots}
    stack = list(needed)
    while stack:
        name = stack.pop()
        for text in [] if name in INSTALLED_WITHOUT_DEPS else res.wheels.get(name, {}).get("requires_dist", []):
            req = Requirement(text)
            dep = canonicalize_name(req.name)
            if (req.marker is None or req.marker.evaluate(env)) and dep not in needed:
                needed.add(dep)
                stack.append(dep)
    unused = sorted(set(res.wheels) - needed)
    if unused:
        res.warnings.append("locked but not needed on this target: " + ", ".join(unused))
    for name, why in INSTALLED_WITHOUT_DEPS.items():
        if name not in res.wheels:
            res.problems.append(f"{name}: INSTALLED_WITHOUT_DEPS names it but the lock does not pin it")
            continue
        skipped = sorted({canonicalize_name(Requirement(t).name) for t in res.wheels[name]["requires_dist"]
                          if Requirement(t).marker is None or Requirement(t).marker.evaluate(env)})
        res.warnings.append(f"{name}: installed with --no-deps, its requirements ({', '.join(skipped) or 'none'}) "
                            f"deliberately left out: {why}")


def short_tag(filename: str) -> str:
    """'cp311-abi3 manylinux_2_28' / 'py3-none-any': interpreter, abi and the oldest glibc it runs on."""
    _, _, _, tags = parse_wheel_filename(filename)
    interp = sorted({t.interpreter for t in tags})
    abi = sorted({t.abi for t in tags})
    platforms = {t.platform for t in tags}
    if platforms == {"any"}:
        return f"{'.'.join(interp)}-{'.'.join(abi)}-any"
    glibc = []
    for p in platforms:
        m = re.match(r"manylinux_(\d+)_(\d+)_", p)
        if m:
            glibc.append((int(m.group(1)), int(m.group(2))))
        elif p.startswith("manylinux2014_"):
            glibc.append((2, 17))
    g = min(glibc) if glibc else None
    return f"{'.'.join(interp)}-{'.'.join(abi)} " + (f"manylinux_{g[0]}_{g[1]}" if g else ",".join(sorted(platforms)))


def print_table(results: list[TargetResult], args: argparse.Namespace) -> None:
    names = sorted(set().union(*(r.pins for r in results)))
    cols = [f"cp{r.python.replace('.', '')} wheel" for r in results]
    rows = []
    for n in names:
        versions = {r.pins[n][0] for r in results if n in r.pins}
        cells = []
        for r in results:
            if n not in r.pins:
                cells.append("(not for this Python)")
            elif n in r.missing:
                cells.append("MISSING")
            elif n in r.wheels:
                cells.append(short_tag(r.wheels[n]["file"]))
            else:
                cells.append("?")
        rows.append([n, " / ".join(sorted(versions)), *cells])
    header = ["package", "version", *cols]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for row in rows:
        print(fmt.format(*row))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lock", type=Path, default=REPO / "requirements" / "runtime.txt")
    p.add_argument("--python", nargs="+", default=["3.11", "3.12", "3.13"], help="target CPython versions")
    p.add_argument("--arch", default="aarch64")
    p.add_argument("--glibc", type=int, default=28, help="newest manylinux_2_N accepted (default 28)")
    p.add_argument("--jobs", type=int, default=0, help="target Pythons checked at once (default: all)")
    p.add_argument("--pip-config", action="store_true", help="use this machine's pip configuration")
    args = p.parse_args(argv)
    args.lock = args.lock.resolve()
    t0 = time.monotonic()
    print(f"aarch64 wheel check: {args.lock.relative_to(REPO) if args.lock.is_relative_to(REPO) else args.lock}, "
          f"Linux {args.arch}, manylinux_2_{args.glibc} or older, CPython {', '.join(args.python)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="dsrter-wheels-") as tmp:
        with ThreadPoolExecutor(max_workers=args.jobs if args.jobs > 0 else len(args.python)) as pool:
            results = list(pool.map(lambda py: check_target(py, args, Path(tmp)), args.python))
    print_table(results, args)
    status = 0
    for r in results:
        head = f"CPython {r.python}: {len(r.wheels)}/{len(r.pins)} wheels found in {r.seconds:.0f} s ({r.pip_runs} pip run(s))"
        print(head)
        if r.pip_error:
            print(f"  ERROR: pip could not answer:\n{r.pip_error}")
            status = max(status, 2)
        for name, why in sorted(r.missing.items()):
            print(f"  MISSING: {name}=={r.pins[name][0]}: no wheel for CPython {r.python} on {args.arch} "
                  f"manylinux_2_{args.glibc} or older ({why})")
            status = max(status, 1)
        for msg in r.problems:
            print(f"  PROBLEM: {msg}")
            status = max(status, 1)
        for msg in r.warnings:
            print(f"  note: {msg}")
    verdict = {0: "OK: every runtime wheel exists", 1: "FAILED: see MISSING/PROBLEM above",
               2: "FAILED: pip could not answer"}[status]
    print(f"{verdict} ({time.monotonic() - t0:.0f} s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
