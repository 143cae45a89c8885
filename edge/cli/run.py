"""``dsrter run``: the real-time daemon (camera or media file + microphone -> overlay + MQTT)."""

from __future__ import annotations

import argparse
import logging
import sys

HELP = "run the real-time daemon: camera + microphone -> emotions on the overlay and over MQTT"
DESCRIPTION = (
    "Run the daemon until SIGTERM/Ctrl-C (or --duration). A missing camera or microphone is reported "
    "and retried with backoff (no microphone = face-only); a missing or corrupt model file is an error "
    "(exit 3), as is an invalid config (exit 2)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=None, help="YAML config file; default: $DSRTER_CONFIG, else ./config.yaml, "
                   "else /etc/dsrter/config.yaml, else the packaged default")
    p.add_argument("--camera", metavar="DEVICE_OR_FILE", default=None,
                   help="override camera.device: a V4L2 index (0), /dev/videoN, or a media file played in real time")
    p.add_argument("--overlay", metavar="BACKEND", default=None, choices=["none", "window", "framebuffer", "video"],
                   help="override overlay.backend (none, window, framebuffer, video)")
    p.add_argument("--duration", metavar="S", type=float, default=None, help="stop after S seconds (exit 0)")


def main(args: argparse.Namespace) -> int:
    from dsrter.edge.config import ConfigError, load_found_config
    from dsrter.edge.logsetup import setup_logging

    try:
        cfg, path, how = load_found_config(args.config)
        if args.camera is not None:
            cfg.camera.device = int(args.camera) if args.camera.strip().isdigit() else args.camera
        if args.overlay is not None:
            cfg.overlay.backend = args.overlay
    except (ConfigError, ValueError) as exc:
        print(f"dsrter run: config error: {exc}", file=sys.stderr)
        return 2
    if args.log_level is None:
        setup_logging(cfg.logging.level)
    if args.duration is not None and args.duration <= 0:
        print("dsrter run: --duration must be > 0", file=sys.stderr)
        return 2
    problem = _unplayable_camera_file(cfg)
    if problem:
        print(f"dsrter run: camera: {problem}", file=sys.stderr)
        return 2
    from dsrter.edge.app.daemon import run_daemon

    logging.getLogger("dsrter.daemon").info("config %s (%s), device_id %s", path, how, cfg.device_id)
    return run_daemon(cfg, args.duration)


def _unplayable_camera_file(cfg) -> str | None:
    """Why ``camera.device``, when it names a media file, cannot be played; None if it can (or is a
    device: a missing or unplugged camera is retried, but a file that cannot be opened is a mistake)."""
    from dsrter.edge.sources.factory import is_live_device

    if not cfg.camera.enabled or is_live_device(cfg.camera.device):
        return None
    from dsrter.edge.sources.media_file import MediaError, MediaFileSource

    probe = MediaFileSource(cfg.camera.device, realtime=False)
    try:
        probe.open()
    except MediaError as exc:
        return str(exc)
    finally:
        probe.close()
    return None
