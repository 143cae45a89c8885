"""Second-level command groups (``dsrter train face``): each target lives in its own module
with ``HELP``, ``add_arguments`` and ``main``, exactly like the top-level commands."""

from __future__ import annotations

import argparse
import importlib


def add_group(p: argparse.ArgumentParser, targets: dict[str, str], dest: str) -> None:
    sub = p.add_subparsers(dest=dest, metavar="TARGET")
    sub.required = True
    for name, module_name in targets.items():
        module = importlib.import_module(module_name)
        sp = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(sp)
        sp.set_defaults(_target=module)


def run_group(args: argparse.Namespace) -> int:
    return int(args._target.main(args) or 0)


def require_train_extra() -> None:
    """Clear message when the runtime-only install lacks the training libraries."""
    missing = []
    for mod in ("torch", "tensorflow"):
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise SystemExit(
            f"dsrter: this command needs the training extra ({', '.join(missing)} not installed); "
            "install it with: .venv/bin/pip install -e '.[train]'"
        )
