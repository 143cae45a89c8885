"""The shape of the code: dsrter's own modules import each other without cycles, at the top of the file.

Every module under edge/, train/ and convert/ is parsed with ``ast`` (nothing is imported). The
graph has an edge for every import of a project module, wherever it sits (an import inside a
function is still a dependency; hiding one there is how cycles went unnoticed). ``if
TYPE_CHECKING:`` imports are not edges: they never run.

An import of a project module inside a function is allowed in two cases only: the module imported
is *heavy* (it loads one of ``HEAVY_LIBRARIES`` when imported, itself or through another project
module: deferring it is deferring an optional heavy dependency), or the importing module is one
``DEFERRED`` names, with the reason. Third-party imports are not checked here.
"""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"edge": "dsrter.edge", "train": "dsrter.train", "convert": "dsrter.convert"}

# libraries that are large, slow to load or optional (the train extra); importing one at the top
# makes a project module heavy
HEAVY_LIBRARIES = {"torch", "tensorflow", "keras", "transformers", "sklearn", "mediapipe",
                   "opensmile"}  # openSMILE: native library, and it must be loaded before TensorFlow
# project modules that are heavy by themselves, with the reason
HEAVY_MODULES: dict[str, str] = {
    "dsrter.edge.infer.speech_features": "loads openSMILE's native library (libSMILEapi) when imported, so that it "
                                         "is in memory before TensorFlow's",
}

# module (fnmatch pattern) -> why it imports (light) project modules inside functions
DEFERRED: dict[str, str] = {
    "dsrter.edge.cli.*": "a command module imports its implementation in main(): `dsrter --help` builds every "
                         "sub-parser, and `dsrter run` must not load TensorFlow, Torch or MediaPipe on the way",
}


def project_modules() -> dict[str, Path]:
    mods = {}
    for folder, pkg in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([pkg, *parts])] = path
    return mods


MODULES = project_modules()


def _resolve(name: str) -> str | None:
    """The project module ``name`` refers to (itself, or its nearest enclosing project module)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports_of(module: str, project: bool = True) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function or class body) for every runtime import;
    ``project=False``: the top-level package names of third-party imports instead."""
    path = MODULES[module]
    is_pkg = path.name == "__init__.py"
    out: list[tuple[str, int, bool]] = []

    def targets(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        assert isinstance(node, ast.ImportFrom)
        base = node.module or ""
        if node.level:
            pkg = module if is_pkg else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                pkg = pkg.rpartition(".")[0]
            base = f"{pkg}.{base}" if base else pkg
        # ``from pkg import mod`` imports the submodule when there is one
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(ast.Module(body=[sub], type_ignores=[]), nested)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                if not project:
                    if not (isinstance(child, ast.ImportFrom) and child.level):
                        out.extend((name.partition(".")[0], child.lineno, nested) for name in targets(child))
                    continue
                for target in dict.fromkeys(_resolve(name) for name in targets(child)):
                    if target is not None and target != module:
                        out.append((target, child.lineno, nested))
                continue
            visit(child, nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                                      ast.ClassDef)))

    visit(ast.parse(path.read_text(), str(path)), False)
    return out


def graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in imports_of(m)} for m in MODULES}


def heavy_modules() -> set[str]:
    """Project modules that load a heavy library when imported (directly or through each other)."""
    heavy = {m for m in MODULES if any(not nested and lib in HEAVY_LIBRARIES
                                       for lib, _, nested in imports_of(m, project=False))} | set(HEAVY_MODULES)
    top = {m: {t for t, _, nested in imports_of(m) if not nested} for m in MODULES}
    grew = True
    while grew:
        more = {m for m, ts in top.items() if m not in heavy and ts & heavy}
        heavy |= more
        grew = bool(more)
    return heavy


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(g):
        if root in index:
            continue
        work = [(root, iter(sorted(g[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(g.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_the_walk_sees_the_project():
    assert "dsrter.edge.cli.main" in MODULES and "dsrter.train.speech_train" in MODULES
    assert "dsrter.edge.config" in graph()["dsrter.edge.sources.camera"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    heavy = heavy_modules()
    assert "dsrter.train.face_model" in heavy and "dsrter.edge.infer.speech_features" in heavy  # torch, openSMILE
    assert set(HEAVY_MODULES) <= set(MODULES), "HEAVY_MODULES names a module that does not exist"
    assert "dsrter.edge.config" not in heavy


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles between project modules:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_project_imports_are_at_the_top_of_the_file():
    unexpected = []
    heavy = heavy_modules()
    for m in MODULES:
        if any(fnmatch.fnmatchcase(m, pat) for pat in DEFERRED):
            continue
        for target, line, nested in imports_of(m):
            if nested and target not in heavy:
                unexpected.append(f"{MODULES[m].relative_to(REPO)}:{line}: imports {target} inside a function")
    assert not unexpected, ("light project modules imported inside functions (move the import to the top; or "
                            "add the importing module to DEFERRED with the reason):\n" + "\n".join(unexpected))


def test_building_the_command_line_loads_no_training_code():
    """`dsrter --help` and every `dsrter run` build the whole parser: no training or conversion module,
    and none of their libraries, may be loaded for it."""
    code = ("import sys; from dsrter.edge.cli.main import build_parser; build_parser(); "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {'scipy', 'torch', 'tensorflow', "
            "'keras', 'sklearn', 'transformers', 'opensmile'} or m.startswith(('dsrter.train.', 'dsrter.convert.')))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert r.stdout.split() == [], f"building the parser loaded: {r.stdout.strip()}"


def test_the_written_out_cli_defaults_match_their_source():
    from dsrter.edge.cli.eval_speech import DEFAULT_GAIN_DB
    from dsrter.train.speech_report import DEFAULT_LEVELS

    assert DEFAULT_GAIN_DB == ",".join(DEFAULT_LEVELS)


def test_every_package_folder_is_packaged():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    data_only = {p for p in listed if p == "dsrter.shipped" or p.startswith("dsrter.shipped.")}
    listed -= data_only  # config.yaml, models/ and systemd/ (package-data), no code
    found = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    assert listed == found, f"pyproject.toml [tool.setuptools] packages: missing {sorted(found - listed)}, " \
                            f"stale {sorted(listed - found)}"


if __name__ == "__main__":  # pragma: no cover - a quick listing while refactoring
    sys.exit(pytest.main([__file__, "-q"]))
