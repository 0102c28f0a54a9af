"""`maskcycle ...`: the console entry point. Argparse only: each command's flags and its action
live in its own module (`add_arguments(p)`, `run_command(args) -> int`); this file lists the
commands and turns the errors a person can cause into one line and an exit status.

Only the module of the command being run is imported (its flags are needed to parse the line), so
`maskcycle --help` and light commands do not wait for torch."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from maskcycle.training.errors import LaunchError, NonFiniteLossError

COMMANDS = {  # name -> (module holding add_arguments/run_command, help)
    "train": ("maskcycle.training.trainer", "train (or resume) one trial"),
    "translate": ("maskcycle.evaluation.translate",
                  "translate the faces in photos (or aligned crops) with a trained generator"),
    "faces": ("maskcycle.data.faces", "detect faces (dlib) in images; one CSV row per file"),
    "sweep": ("maskcycle.training.sweep", "run params YAMLs through notebooks/02_training.ipynb; write summary.csv"),
    "evaluate": ("maskcycle.evaluation.evaluate", "FID/KID, face-feature distances, identity and paired metrics "
                 "of a sweep's trials, a reference checkpoint folder, or folders of external fakes"),
    "demo-data": ("maskcycle.data.demo", "write the embedded demo data set (FFHQ-like and MaskedFace-Net-like trees)"),
    "curate": ("maskcycle.data.curate", "filter, split identity-disjointly, resize and cache the raw sets"),
    "bench": ("maskcycle.training.bench", "training speed: plain fp32 vs fast path, interleaved; writes JSON"),
}
SURVEY_COMMANDS = {
    "build": ("maskcycle.survey.page", "pick images and write survey.html + key.csv"),
    "simulate": ("maskcycle.survey.simulate", "simulated participants (files named simulated_*)"),
    "analyse": ("maskcycle.survey.analysis", "read response CSVs against the key and print the analysis"),
    "serve": ("maskcycle.survey.server", "serve the quiz and store every answer in an SQLite database"),
    "invite": ("maskcycle.survey.db:invite", "add invitations (participant links) to a survey database"),
    "status": ("maskcycle.survey.db:status", "progress of a survey database: participants, answers per image"),
    "export": ("maskcycle.survey.db:export", "write a survey database's answers as the response CSVs analyse reads"),
}
INTERRUPTED = 130  # the shell's status for a process ended by SIGINT (128 + 2)
DESCRIPTIONS = {"sweep": "Exit status: number of failed trials; 125 when nothing could start."}


def _add(sub, name: str, module: str, helptext: str, load: bool) -> None:
    p = sub.add_parser(name, help=helptext, description=DESCRIPTIONS.get(name, helptext))
    if load:  # "module:name": one of several commands of a module (add_name_arguments, run_name)
        module, _, fn = module.partition(":")
        m = importlib.import_module(module)
        getattr(m, f"add_{fn}_arguments" if fn else "add_arguments")(p)
        p.set_defaults(func=getattr(m, f"run_{fn}" if fn else "run_command"))


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv`, only the named command's module is imported (all without)."""
    words = [a for a in (argv or []) if not a.startswith("-")]
    chosen = words[0] if argv is not None and words else None
    parser = argparse.ArgumentParser(prog="maskcycle", description="CycleGAN for masked / unmasked faces")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, helptext) in COMMANDS.items():
        _add(sub, name, module, helptext, argv is None or name == chosen)
    p = sub.add_parser("survey", help="real-vs-fake quiz: build the page, serve it, simulate, export, analyse")
    survey = p.add_subparsers(dest="survey_command", required=True)
    for name, (module, helptext) in SURVEY_COMMANDS.items():
        _add(survey, name, module, helptext, argv is None or chosen == "survey")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    command = " ".join(filter(None, [args.command, getattr(args, "survey_command", None)]))
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:  # ConfigError, CheckpointError, SurveyDataError, ...
        print(f"maskcycle {command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder, a busy trial: one line, no traceback
        print(f"maskcycle {command}: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except (LaunchError, NonFiniteLossError) as exc:  # the run failed; its checkpoint is kept
        print(f"maskcycle {command}: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: what each step finished is on disk (atomic writes, logs)
        print(f"\nmaskcycle {command}: interrupted; what was finished is kept: rerun the same command to go on",
              file=sys.stderr)
        return INTERRUPTED


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
