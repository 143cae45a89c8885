"""``dsrter bench``: the edge pipeline's speed, latency, CPU, memory and start-up, with the `fer`
package's pipeline as the peer on the same frames; prints a table and can write JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "benchmark the pipeline (per stage, fps, latency, CPU, memory, start-up) against the fer peer"
DESCRIPTION = (
    "Decode real video (../shared/data/av-samples when present, else a generated clip; or --clip), run our "
    "pipeline (detector, tracker, face classifier, speech worker, fusion, overlay, MQTT to a local mosquitto "
    "the bench starts) and the `fer` package's pipeline on the same 640x480 frames with 1 and 4 faces, then "
    "`dsrter run` on the clip for start-up time to READY, CPU and memory. Prints a table with the ratios "
    "ours/peer and a Raspberry Pi estimate; --json writes everything. Every time figure depends on the machine "
    "and its load. Missing face/speech models are replaced by small stand-ins (said in the output)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clip", type=Path, default=None,
                   help="a video file to use instead of av-samples (4 faces: the clip tiled 2x2)")
    p.add_argument("--faces", type=int, nargs="+", choices=[1, 4], default=[1, 4], help="face counts to run")
    p.add_argument("--frames", type=int, default=300, help="measured frames per run (after the warm-up)")
    p.add_argument("--warmup", type=int, default=30, help="frames run before measuring")
    p.add_argument("--json", dest="json_out", type=Path, default=None, metavar="OUT", help="write the report here")
    p.add_argument("-c", "--config", type=Path, default=Path("config.yaml"),
                   help="config whose models and face/speech/fusion settings are used")
    p.add_argument("--no-peer", action="store_true", help="skip the fer peer rows")
    p.add_argument("--no-mqtt", action="store_true", help="no broker: skip capture-to-MQTT latency")
    p.add_argument("--no-daemon", action="store_true", help="skip the `dsrter run` start-up/CPU/memory probe")
    p.add_argument("--daemon-seconds", type=float, default=12.0, help="how long `dsrter run` is measured after READY")
    p.add_argument("--pi-factor", type=float, default=None,
                   help="assumed single-core speed ratio of this machine to a 1.8 GHz Cortex-A72 for the "
                        "Raspberry Pi estimate's non-neural work (default 5)")


def main(args: argparse.Namespace) -> int:
    from dsrter.edge.tools.bench import DEFAULT_PI4_FACTOR, BenchError, BenchOptions, format_report, run_bench
    from dsrter.edge.config import ConfigError
    from dsrter.edge.infer.model_io import ModelError

    if args.frames < 1 or args.warmup < 0:
        print("dsrter bench: --frames must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    if args.log_level is None:  # the sources' and the sink's INFO lines would drown the progress lines
        import logging

        logging.getLogger("dsrter.edge").setLevel(logging.WARNING)
    opts = BenchOptions(clip=args.clip, faces=tuple(dict.fromkeys(args.faces)), frames=args.frames,
                        warmup=args.warmup, config=args.config, json_out=args.json_out, peer=not args.no_peer,
                        mqtt=not args.no_mqtt, daemon=not args.no_daemon, daemon_seconds=args.daemon_seconds,
                        pi_factor=args.pi_factor if args.pi_factor else DEFAULT_PI4_FACTOR)
    try:
        report = run_bench(opts, progress=lambda s: print(s, file=sys.stderr, flush=True))
    except (BenchError, ConfigError, ModelError) as exc:
        print(f"dsrter bench: {exc}", file=sys.stderr)
        return 2
    report["command"] = "dsrter " + " ".join(sys.argv[1:])
    print(format_report(report))
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nJSON: {args.json_out}")
    return 0
