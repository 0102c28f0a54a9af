"""`maskcycle ...`: the console entry point over the package's functions.

Each sub-command is a small function; `main` dispatches. Sub-commands import what they need
lazily so that `maskcycle --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys


def _train(args) -> int:
    from maskcycle.config import TrialConfig
    from maskcycle.training.trainer import train_or_launch

    cfg = TrialConfig.from_yaml(args.params, args.set)
    print(train_or_launch(cfg, args.out, stop_after_epochs=args.stop_after_epochs))
    return 0


def _translate(args) -> int:
    from maskcycle.config import resolve_device
    from maskcycle.evaluation.translate import load_generator, translate_folder

    cfg, G = load_generator(args.checkpoint, args.direction, resolve_device(args.device))
    report = translate_folder(G, cfg, args.input, args.output, size=args.size, batch_size=args.batch_size)
    print(f"wrote {len(report.written)} images to {args.output}")
    for path, why in report.failed:
        print(f"failed: {path}: {why}", file=sys.stderr)
    return 1 if report.failed else 0


def _sweep(args) -> int:
    from maskcycle.training import slurm, sweep

    args.slurm = slurm.flag_options(args) + list(args.slurm)  # --slurm KEY=VALUE wins over named flags
    return sweep.main(args)


def _evaluate(args) -> int:
    from maskcycle.config import ConfigError, TrialConfig, parse_overrides, resolve_device
    from maskcycle.evaluation import evaluate

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


def _demo_data(args) -> int:
    from maskcycle.data.demo import generate

    print(generate(args.out, n_ids=args.n_ids, size=args.size, seed=args.seed, workers=args.workers))
    return 0


def _curate(args) -> int:
    from maskcycle.data.curate import CurationError, Settings, curate
    from maskcycle.data.readers import LayoutError

    s = Settings(n_train=args.n_train, n_test=args.n_test, load_size=args.load_size, seed=args.seed,
                 min_size=args.min_size, sharpness_min=args.sharpness_min, require_face=args.require_face,
                 placements=tuple(args.placements), exclusions=args.exclusions or "")
    try:
        m = curate(args.out, ffhq=args.ffhq, maskedfacenet=args.maskedfacenet, curated=args.curated, settings=s,
                   workers=args.workers)
    except (LayoutError, CurationError) as exc:
        print(f"maskcycle curate: error: {exc}", file=sys.stderr)
        return 2
    print(m.groupby(["domain", "split"]).size().unstack(fill_value=0).to_string())
    return 0


def _survey(args) -> int:
    import json

    from maskcycle.survey import analysis
    from maskcycle.survey import page as survey_page
    from maskcycle.survey import simulate as survey_sim

    try:
        if args.survey_command == "build":
            folders = [args.real_a, args.real_b, args.fakes_ab, args.fakes_ba]
            trial = args.trial or ""
            if args.sweep:
                trial = trial or survey_page.choose_trial(args.sweep)
                ev = f"{args.sweep}/{trial}/eval"
                cur = args.curated or "results/demo/curated"
                folders = [f or d for f, d in zip(folders, [f"{cur}/testA", f"{cur}/testB", f"{ev}/fakes_AB",
                                                            f"{ev}/fakes_BA"])]
            if not all(folders):
                print("maskcycle survey build: error: give --sweep (and --curated) or all of --real-a --real-b "
                      "--fakes-ab --fakes-ba", file=sys.stderr)
                return 2
            page = survey_page.build_survey(*folders, args.out, n=args.n, n_practice=args.practice,
                                       n_attention=args.attention, seed=args.seed, size=args.size, trial=trial,
                                       force=args.force)
            print(f"wrote {page} (for participants) and {page.parent / 'key.csv'} (for the analyst only)")
        elif args.survey_command == "simulate":
            params = survey_sim.SimParams(n_participants=args.participants, dprime=args.dprime,
                                      criterion=args.criterion, sd_dprime=args.sd_dprime,
                                      sd_criterion=args.sd_criterion, lapse=args.lapse, seed=args.seed)
            files = survey_sim.simulate(args.survey, args.out, params)
            print(f"wrote {len(files)} simulated response files to {args.out}")
        else:
            result = analysis.analyse(args.survey, args.responses, n_boot=args.n_boot, seed=args.seed)
            summary = analysis.summary_json(result)
            if args.out:
                analysis.write_summary(result, args.out)
            for r in summary["rates"]:
                print(f"{r['measure']}: {100 * r['rate']:.2f} % ({r['k']}/{r['n']}), Wilson "
                      f"[{100 * r['wilson_lo']:.2f}, {100 * r['wilson_hi']:.2f}], participant bootstrap "
                      f"[{100 * r['boot_lo']:.2f}, {100 * r['boot_hi']:.2f}], p(50 %) = {r['p_vs_50']:.3g}")
            print("d' and criterion:", json.dumps({k: round(v, 4) for k, v in summary["sdt"].items()}))
            if "recovery" in summary:
                print("simulated parameters recovered:", all(r["recovered"] for r in summary["recovery"]))
    except (analysis.SurveyDataError, ValueError) as exc:
        print(f"maskcycle survey {args.survey_command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _bench(args) -> int:
    from maskcycle.training.bench import main_args

    return main_args(args)


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
    from maskcycle.training.sweep import add_arguments as _sweep_arguments  # argparse only, no heavy imports

    _sweep_arguments(p)
    from maskcycle.training.slurm import add_arguments as _slurm_arguments  # --partition, --time, --slurm-config ...

    _slurm_arguments(p)
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
    p = sub.add_parser("demo-data", help="write the embedded demo data set (FFHQ-like and MaskedFace-Net-like trees)")
    p.add_argument("--out", required=True, help="folder for ffhq/ and maskedfacenet/")
    p.add_argument("--n-ids", type=int, default=600, help="number of face ids")
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="processes (0 = all cores)")
    p.set_defaults(func=_demo_data)

    p = sub.add_parser("curate", help="filter, split identity-disjointly, resize and cache the raw sets")
    p.add_argument("--ffhq", default=None, help="FFHQ root (images1024x1024/ or thumbnails128x128/ inside)")
    p.add_argument("--maskedfacenet", default=None, help="MaskedFace-Net root (CMFD/ and/or IMFD/ inside)")
    p.add_argument("--curated", default=None, help="an already-curated trainA/trainB/testA/testB folder instead")
    p.add_argument("--out", required=True)
    p.add_argument("--n-train", type=int, default=6000, help="train images per domain")
    p.add_argument("--n-test", type=int, default=1000, help="test images per domain")
    p.add_argument("--load-size", type=int, default=286, help="side of the written images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="processes (0 = all cores)")
    p.add_argument("--min-size", type=int, default=0, help="smallest accepted side (0 = load size)")
    p.add_argument("--sharpness-min", type=float, default=8.0, help="variance-of-Laplacian threshold")
    p.add_argument("--require-face", action="store_true", help="also reject images where no face is detected")
    p.add_argument("--placements", nargs="+", default=["correct"],
                   choices=["correct", "nose_uncovered", "chin_uncovered", "nose_mouth_uncovered"],
                   help="MaskedFace-Net placement classes kept (IMFD classes are opt-in)")
    p.add_argument("--exclusions", default=None, help="manual exclusion list (id,reason[,domain])")
    p.set_defaults(func=_curate)
    p = sub.add_parser("survey", help="real-vs-fake quiz: build the page, simulate answers, analyse answers")
    ssub = p.add_subparsers(dest="survey_command", required=True)
    q = ssub.add_parser("build", help="pick images and write survey.html + key.csv")
    q.add_argument("--out", required=True, help="folder for survey.html, key.csv, survey.json")
    q.add_argument("--sweep", help="sweep folder: fakes from <sweep>/<trial>/eval/fakes_AB|BA")
    q.add_argument("--trial", help="trial in the sweep (default: lowest FID_AB + FID_BA, else first)")
    q.add_argument("--curated", help="curated folder with testA/testB (with --sweep; default results/demo/curated)")
    q.add_argument("--real-a", help="real unmasked test images")
    q.add_argument("--real-b", help="real masked test images")
    q.add_argument("--fakes-ab", help="G_AB outputs (masks put on)")
    q.add_argument("--fakes-ba", help="G_BA outputs (masks taken off)")
    q.add_argument("--n", type=int, default=22, help="scored images, half real and half generated")
    q.add_argument("--practice", type=int, default=2, help="practice images with feedback (unscored)")
    q.add_argument("--attention", type=int, default=2, help="attention checks")
    q.add_argument("--size", type=int, default=None, help="every image is shown at this size (default: the fakes')")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--force", action="store_true", help="replace a different survey already in --out")
    q = ssub.add_parser("simulate", help="simulated participants (files named simulated_*)")
    q.add_argument("--survey", required=True, help="folder with key.csv")
    q.add_argument("--out", required=True, help="folder for simulated_<id>.csv and simulated_params.json")
    q.add_argument("--participants", type=int, default=100)
    q.add_argument("--dprime", type=float, default=0.5, help="mean sensitivity to generated images")
    q.add_argument("--criterion", type=float, default=0.2, help="mean bias (> 0 leans to 'real')")
    q.add_argument("--sd-dprime", type=float, default=0.3)
    q.add_argument("--sd-criterion", type=float, default=0.2)
    q.add_argument("--lapse", type=float, default=0.02, help="attention checks failed at this rate")
    q.add_argument("--seed", type=int, default=0)
    q = ssub.add_parser("analyse", help="read response CSVs against the key and print the analysis")
    q.add_argument("--survey", required=True, help="folder with key.csv")
    q.add_argument("--responses", required=True, help="folder of response CSVs (searched recursively)")
    q.add_argument("--out", help="write the analysis as JSON here")
    q.add_argument("--n-boot", type=int, default=2000)
    q.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_survey)
    p = sub.add_parser("bench", help="training speed: plain fp32 vs fast and batched paths, interleaved; writes JSON")
    from maskcycle.training.bench import add_arguments as _bench_arguments  # argparse only, no heavy imports

    _bench_arguments(p)
    p.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # before the imports below, so --help needs no torch
    from maskcycle.config import ConfigError
    from maskcycle.models.checkpoints import CheckpointError
    from maskcycle.training.launch import LaunchError
    from maskcycle.training.trainer import NonFiniteLossError

    try:
        return args.func(args)
    except (ConfigError, CheckpointError, FileNotFoundError) as exc:
        print(f"maskcycle {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (LaunchError, NonFiniteLossError) as exc:  # the run failed; its checkpoint is kept
        print(f"maskcycle {args.command}: failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
