"""`maskcycle ...`: the console entry point. Argparse only: each command's flags and its action
live in its own module (`add_arguments(p)`, `run_command(args) -> int`); this file lists the
commands and turns the errors a person can cause into one line and an exit status."""

from __future__ import annotations

import argparse
import errno
import sys

from maskcycle.data import curate, demo, faces
from maskcycle.evaluation import evaluate, translate
from maskcycle.models.checkpoints import CheckpointError
from maskcycle.survey import analysis, page, simulate
from maskcycle.training import bench, sweep, trainer
from maskcycle.training.launch import LaunchError

COMMANDS = (
    ("train", trainer, "train (or resume) one trial"),
    ("translate", translate, "translate the faces in photos (or aligned crops) with a trained generator"),
    ("faces", faces, "detect faces (dlib) in images; one CSV row per file"),
    ("sweep", sweep, "run params YAMLs through notebooks/02_training.ipynb; write summary.csv"),
    ("evaluate", evaluate, "FID/KID, face-feature distances, identity and paired metrics of a sweep's "
                           "trials, a reference checkpoint folder, or folders of external fakes"),
    ("demo-data", demo, "write the embedded demo data set (FFHQ-like and MaskedFace-Net-like trees)"),
    ("curate", curate, "filter, split identity-disjointly, resize and cache the raw sets"),
    ("bench", bench, "training speed: plain fp32 vs fast path, interleaved; writes JSON"),
)
SURVEY_COMMANDS = (
    ("build", page, "pick images and write survey.html + key.csv"),
    ("simulate", simulate, "simulated participants (files named simulated_*)"),
    ("analyse", analysis, "read response CSVs against the key and print the analysis"),
)
DESCRIPTIONS = {"sweep": "Exit status: number of failed trials; 125 when nothing could start."}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskcycle", description="CycleGAN for masked / unmasked faces")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module, helptext in COMMANDS:
        p = sub.add_parser(name, help=helptext, description=DESCRIPTIONS.get(name, helptext))
        module.add_arguments(p)
        p.set_defaults(func=module.run_command)
    p = sub.add_parser("survey", help="real-vs-fake quiz: build the page, simulate answers, analyse answers")
    survey = p.add_subparsers(dest="survey_command", required=True)
    for name, module, helptext in SURVEY_COMMANDS:
        q = survey.add_parser(name, help=helptext, description=helptext)
        module.add_arguments(q)
        q.set_defaults(func=module.run_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = " ".join(filter(None, [args.command, getattr(args, "survey_command", None)]))
    try:
        return args.func(args)
    except (ValueError, CheckpointError, FileNotFoundError) as exc:  # ConfigError, SurveyDataError, ... are ValueErrors
        print(f"maskcycle {command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder, a busy trial: one line, no traceback
        print(f"maskcycle {command}: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except (LaunchError, trainer.NonFiniteLossError) as exc:  # the run failed; its checkpoint is kept
        print(f"maskcycle {command}: failed: {exc}", file=sys.stderr)
        return 1


HINTS = {
    errno.ENOSPC: "no space left on device: free some space or write elsewhere (what was saved before is kept)",
    errno.EROFS: "read-only file system: choose an output folder you can write to",
    errno.EACCES: "permission denied: choose an output folder you can write to",
    errno.EPERM: "not permitted: choose an output folder you can write to",
}


def os_error_line(exc: OSError) -> str:
    """`file: what happened (what to do)` for an OSError."""
    if exc.errno in HINTS:
        where = exc.filename or "?"
        return f"{where}: {HINTS[exc.errno]}"
    if exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


if __name__ == "__main__":
    raise SystemExit(main())
