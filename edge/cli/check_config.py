"""``dsrter check-config``: validate a config file without starting anything."""

from __future__ import annotations

import argparse
import sys

from dsrter.edge.config import ConfigError, load_found_config

HELP = "validate a config file (unknown keys, types, values) and exit non-zero on error"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default=None, help="path to the YAML config; default: "
                   "$DSRTER_CONFIG, else ./config.yaml, else /etc/dsrter/config.yaml, else the packaged default")
    p.add_argument("--show", action="store_true", help="print the effective config (defaults and env overrides applied)")


def main(args: argparse.Namespace) -> int:
    try:
        cfg, path, how = load_found_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.show:
        import yaml

        print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    missing = [str(p) for p in (cfg.face.model, cfg.face.detector_model, cfg.speech.model) if not p.exists()]
    for m in missing:
        print(f"warning: {m}: model file does not exist yet", file=sys.stderr)
    print(f"{path}: OK" + ("" if how == "-c" else f" (found as {how})"))
    return 0
