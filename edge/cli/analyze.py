"""``dsrter analyze``: face + speech emotion over a recorded clip, on the clip's own timeline."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

HELP = "analyse a video (or audio) file: annotated video (audio kept), emotion timeline (JSONL/CSV/PNG) and summary"
DESCRIPTION = (
    "Decode CLIP's video and audio as fast as possible and run both streams on the clip's timeline "
    "(speech in window_s windows every hop_s of clip time). Writes DIR/annotated.mp4, "
    "DIR/timeline.jsonl, timeline.csv, timeline.png and summary.json. A file with audio and no video "
    "(.wav, .flac, .m4a, ...) gets the speech stream alone and no annotated.mp4. Exit 2: bad config, "
    "unreadable clip or nothing to analyse; exit 3: missing or corrupt model."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("clip", type=Path, help="video or audio file (any format FFmpeg reads); the audio track is analysed too")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("-c", "--config", default=None, help="YAML config (models, smoothing, fusion); default: "
                   "$DSRTER_CONFIG, else ./config.yaml, else /etc/dsrter/config.yaml, else the packaged default")
    p.add_argument("--no-video", action="store_true", help="skip the annotated video (faster)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from dsrter.edge.config import ConfigError, load_found_config
    from dsrter.edge.logsetup import setup_logging

    try:
        cfg, _, _ = load_found_config(args.config)
    except ConfigError as exc:
        print(f"dsrter analyze: config error: {exc}", file=sys.stderr)
        return 2
    if args.log_level is None:
        setup_logging(cfg.logging.level)
    log = logging.getLogger("dsrter.analyze")
    if not args.clip.is_file():
        why = ("is a folder, not a media file" if args.clip.is_dir() else
               "is not a regular file (a pipe or a device): analyze reads the file more than once, so save the "
               "stream to a file first" if args.clip.exists() else "no such file")
        print(f"dsrter analyze: {args.clip}: {why}", file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(f"dsrter analyze: --out {args.out}: exists and is not a folder", file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"dsrter analyze: --out {args.out}: cannot create the folder: {exc.strerror or exc}", file=sys.stderr)
        return 2
    from dsrter.edge.app.analyze import analyze_clip
    from dsrter.edge.infer.models import load_models
    from dsrter.edge.sources.media_file import MediaError
    from dsrter.edge.infer.model_io import ModelError

    try:
        models = load_models(cfg)
    except ModelError as exc:
        print(f"dsrter analyze: {exc}", file=sys.stderr)
        return 3
    try:
        summary = analyze_clip(args.clip, args.out, cfg, models, video=not args.no_video,
                               progress=False if args.no_progress else None)
    except MediaError as exc:
        print(f"dsrter analyze: {exc}", file=sys.stderr)
        return 2
    finally:
        models.close()
    a = summary["analysis"]
    for w in a["warnings"]:
        print(f"dsrter analyze: warning: {w}", file=sys.stderr)
    faces = ", ".join(f"#{k} {v['dominant']}" for k, v in summary["faces"].items()) or "none"
    sp = summary["speech"]
    speech = f"{sp['dominant']} ({sp.get('speaking_s', 0):.1f} s speaking)" if sp.get("dominant") else "no speech"
    log.info("%s: %d frames in %.1f s (%.1fx real time); faces: %s; speech: %s; fused: %s",
             a["clip"], a["frames"], a["wall_s"], a["speed_x_realtime"] or 0, faces, speech,
             summary["fused"].get("dominant"))
    print(f"wrote {args.out}: {', '.join(a['outputs'])}")
    return 0
