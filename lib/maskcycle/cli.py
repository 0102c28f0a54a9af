"""`maskcycle ...`: the console entry point over the package's functions.

Each sub-command is a small function; `main` dispatches. Sub-commands import what they need
lazily so that `maskcycle --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys


def _train(args) -> int:
    from maskcycle.config import TrialConfig
    from maskcycle.train import train

    cfg = TrialConfig.from_yaml(args.params, args.set)
    print(train(cfg, args.out, stop_after_epochs=args.stop_after_epochs))
    return 0


def _translate(args) -> int:
    from maskcycle.train import resolve_device
    from maskcycle.translate import load_generator, translate_folder

    cfg, G = load_generator(args.checkpoint, args.direction, resolve_device(args.device))
    report = translate_folder(G, cfg, args.input, args.output, size=args.size, batch_size=args.batch_size)
    print(f"wrote {len(report.written)} images to {args.output}")
    for path, why in report.failed:
        print(f"failed: {path}: {why}", file=sys.stderr)
    return 1 if report.failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskcycle", description="CycleGAN for masked / unmasked faces")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train (or resume) one trial")
    p.add_argument("--params", required=True, help="trial YAML (TrialConfig fields)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override settings")
    p.add_argument("--out", required=True, help="trial folder; resumed when it holds a checkpoint")
    p.add_argument("--stop-after-epochs", type=int, default=None, help="end this call after N epochs")
    p.set_defaults(func=_train)

    p = sub.add_parser("translate", help="translate a folder of images with a trained generator")
    p.add_argument("--checkpoint", required=True, help="our .pt, or the reference's *_net_G_A/B.pth")
    p.add_argument("--direction", required=True, choices=["AB", "BA"], help="AB puts a mask on, BA takes it off")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--size", type=int, default=None, help="resize inputs to this (default: crop_size)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=_translate)
    return parser


def main(argv: list[str] | None = None) -> int:
    from maskcycle.config import ConfigError
    from maskcycle.models.checkpoints import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, CheckpointError, FileNotFoundError) as exc:
        print(f"maskcycle {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
