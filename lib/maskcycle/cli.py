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


def _sweep(args) -> int:
    from maskcycle import sweep

    return sweep.main(args)


def _evaluate(args) -> int:
    from maskcycle import evaluate
    from maskcycle.config import ConfigError, TrialConfig, parse_overrides
    from maskcycle.train import resolve_device

    if bool(args.sweep) == bool(args.reference):
        raise ConfigError("give exactly one of --sweep DIR or --reference DIR")
    common = dict(every_k_epochs=args.every_k_epochs, batch_size=args.batch_size, force=args.force)
    if args.sweep:
        table = evaluate.evaluate_sweep(args.sweep, args.curated, inception_weights=args.inception_weights,
                                        feature_extractor=args.feature_extractor, download=not args.no_download,
                                        device=args.device, **common)
        print(table.to_string(index=False) if len(table) else "(no trials)")
        print(f"results: {args.sweep}/results.csv")
        column = table.get("fid_unavailable_reason")
        reasons = set(column.dropna()) if column is not None else set()
    else:
        if not args.curated:
            raise ConfigError("--reference needs --curated DIR (the folder with testA/ and testB/)")
        cfg = TrialConfig().replace(**parse_overrides(args.set))
        device = resolve_device(args.device)
        scorer = evaluate.open_scorer(args.feature_extractor, args.inception_weights, not args.no_download, device)
        record = evaluate.evaluate_reference(args.reference, args.curated, cfg, args.out, scorer,
                                             device=device, **common)
        print("\n".join(f"{k}: {v}" for k, v in record.items() if not isinstance(v, (list, dict))))
        reasons = {record["fid_unavailable_reason"]} - {None}
    for reason in reasons:
        print(f"maskcycle evaluate: FID/KID unavailable: {reason}", file=sys.stderr)
    return 3 if reasons and args.require_fid else 0


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

    p = sub.add_parser("sweep", help="run params YAMLs through notebooks/02_training.ipynb; write summary.csv",
                       description="Exit status: number of failed trials; 125 when nothing could start.")
    from maskcycle.sweep import add_arguments as _sweep_arguments  # argparse only, no heavy imports

    _sweep_arguments(p)
    p.set_defaults(func=_sweep)
    p = sub.add_parser("evaluate", help="FID/KID, paired metrics and FID over training of a sweep's trials "
                                        "(or of a reference-implementation checkpoint folder)")
    p.add_argument("--sweep", help="sweep folder: evaluates every finished trial, writes results.csv")
    p.add_argument("--reference", help="folder of the reference's <epoch>_net_G_A.pth / _net_G_B.pth")
    p.add_argument("--curated", default=None, help="curated folder with testA/testB[/pairs_test.csv] "
                   "(default for --sweep: each trial's dataroot)")
    p.add_argument("--every-k-epochs", type=int, default=None,
                   help="FID over training at every K-th saved epoch (0: final only; default: every saved epoch)")
    p.add_argument("--inception-weights", default=None, help="path of weights-inception-2015-12-05-6726825d.pth "
                   "(default: $MASKCYCLE_INCEPTION_WEIGHTS, then the torch hub cache)")
    p.add_argument("--no-download", action="store_true", help="never try to download the Inception weights")
    p.add_argument("--require-fid", action="store_true", help="exit 3 when FID/KID cannot be computed")
    p.add_argument("--feature-extractor", default="inception-v3-compat",
                   help="a torch-fidelity extractor name (the standard FID uses inception-v3-compat)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="--reference only: the run's settings (netG, ngf, norm, crop_size, ...)")
    p.add_argument("--out", default=None, help="--reference only: where eval/ goes (default: the folder)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--force", action="store_true", help="recompute even what an earlier run already scored")
    p.set_defaults(func=_evaluate)
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
