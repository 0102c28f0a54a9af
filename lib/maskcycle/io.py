"""Files a step writes: atomic writes (temp file + os.replace), figures, and run.json (what a
result depends on: git commit and dirty flag, package versions, device, times).

Atomic writes put a temp file beside the target, then os.replace, so a reader or a rerun after a
kill never sees half a file. Files get mode 0644 (mkstemp's 0600 would hide results, e.g. a survey
page, from a web server or a colleague)."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import fcntl
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

FILE_MODE = 0o644
TEMP_MARK = ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")  # mkstemp's 8 random characters


class FolderBusyError(OSError):
    """Another process holds the folder's lock (e.g. a second training into the same trial)."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces `path`, on error it is removed.
    `suffix` lets writers that choose a format by extension (PIL, numpy) see the right one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # ".tmp" always in the name, so that `remove_stale_temps` can find the leftovers of a kill.
    suffix = TEMP_MARK + suffix.removeprefix(TEMP_MARK)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as exc:  # e.g. a full disk inside write(): say which file it was
        if exc.errno is not None and (exc.filename is None or str(exc.filename) == tmp):
            exc.filename = str(path)
        raise
    finally:
        Path(tmp).unlink(missing_ok=True)


def remove_stale_temps(folder: str | os.PathLike, subfolders: tuple[str, ...] = ()) -> list[Path]:
    """Remove what interrupted atomic writes left in `folder` (and the given subfolders); returns them.
    Call only while holding the folder's lock: another writer's temp files look the same."""
    removed = []
    for d in (Path(folder), *(Path(folder) / s for s in subfolders)):
        if d.is_dir():
            for p in d.iterdir():
                if _TEMP_NAME.match(p.name) and p.is_file():
                    p.unlink(missing_ok=True)
                    removed.append(p)
    return removed


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "another process") -> Iterator[None]:
    """Hold an exclusive lock on `folder` (a `.lock` file inside it, released when the process ends,
    even by kill -9); FolderBusyError at once when another process holds it."""
    path = Path(folder) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise FolderBusyError(f"{folder}: {what} is already running there (pid {holder}); "
                                  "wait for it to end, or use another folder") from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# --- the one output rule ----------------------------------------------------------------------------
# Files the project writes as inputs of later steps: no command's --out may replace one.
ARTEFACTS = {"key.csv": "a survey's answer key", "survey.json": "a survey's record",
             "survey.html": "a survey's page", "manifest.csv": "a curated folder's manifest",
             "curation.json": "a curated folder's record", "pairs_test.csv": "a curated folder's test pairs",
             "pairs_train.csv": "a curated folder's training pairs", "config.yaml": "a trial's config",
             "run.json": "a trial's run record", "metrics.json": "a trial's metrics",
             "demo_truth.csv": "the demo set's truth"}
ARTEFACT_SUFFIXES = {".pt": "a checkpoint", ".pth": "a checkpoint", ".ipynb": "a notebook",
                     ".yaml": "a params file", ".yml": "a params file"}


class OutputOverlapError(ValueError):
    """An output that would land on an input or on a file the project wrote for a later step."""


def resolved(path: str | os.PathLike, flag: str) -> Path:
    """`path` made absolute with its links followed; a symlink loop is a one-line error naming it."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.11: RuntimeError("Symlink loop from ...")
        raise OutputOverlapError(f"{flag} {path}: cannot follow its links ({exc}); is it a symlink loop?") from None


# A folder holding one of these is that step's folder: only the step that writes it may write there
FOLDER_MARKS = {"key.csv": "a survey folder", "manifest.csv": "a curated folder", "config.yaml": "a trial folder"}


def check_output(output: str | os.PathLike, inputs, flag: str = "--out", kind: str = "folder",
                 suffix: str | None = None, own: tuple[str, ...] = ()) -> Path:
    """The one output rule of every command, applied before any work: refuse an output that is,
    holds or lies inside an input (file or folder), or that is an existing file the project wrote
    as a later step's input (`ARTEFACTS`). `inputs`: (flag, path or list of paths) pairs, None
    skipped. `kind` "folder": an existing file is refused, and so is another step's folder
    (`FOLDER_MARKS`, but for the marks in `own`, the command's own kind of folder); "file": an
    existing folder is refused, and an existing file not ending in `suffix` (so that
    `bench --out params.yaml` cannot replace a YAML).
    Returns the resolved output; OutputOverlapError (exit 2) names both paths."""
    out = resolved(output, flag)
    if kind == "folder" and out.exists() and not out.is_dir():
        raise OutputOverlapError(f"{flag} {output} is an existing file; give a folder for the results")
    if kind == "file":
        if out.is_dir():
            raise OutputOverlapError(f"{flag} {output} is a folder; give a file name")
        what = ARTEFACTS.get(out.name) or ARTEFACT_SUFFIXES.get(out.suffix.lower())
        if out.is_file() and what:
            raise OutputOverlapError(f"{flag} {output} is {what}, a file other steps read: refusing to replace "
                                     "it; choose another file name")
        if out.is_file() and suffix and out.suffix.lower() != suffix:
            raise OutputOverlapError(f"{flag} {output} is an existing file this command did not write (it writes "
                                     f"{suffix} files): refusing to replace it; choose another file name")
    for in_flag, paths in inputs:
        for given in [paths] if isinstance(paths, (str, os.PathLike)) else list(paths or []):
            if given is None or given == "":
                continue
            src = resolved(given, in_flag)
            noun = "folder" if src.is_dir() else "file"
            if out == src or (noun == "folder" and src in out.parents):
                relation = f"is (inside) the input {noun}" if noun == "folder" else "is the input file"
            elif out in src.parents:
                relation = f"holds the input {noun}"
            else:
                continue
            raise OutputOverlapError(f"{flag} {output} {relation} {given} ({in_flag}): it overlaps the source "
                                     f"{noun}, and no command writes over or among its inputs; choose an output "
                                     "outside every input")
    for mark, what in FOLDER_MARKS.items():
        if kind == "folder" and mark not in own and (out / mark).is_file():
            raise OutputOverlapError(f"{flag} {output} is {what} (it holds {out / mark}): refusing to write into "
                                     "another step's folder; choose another folder")
    return out


def check_writable(folder: str | os.PathLike) -> None:
    """Try a file in `folder` (or, where it does not exist yet, in the nearest folder above it, where
    it would be created), so that a read-only or full place fails before the work; leaves nothing."""
    folder = Path(folder).absolute()
    where = next((p for p in (folder, *folder.parents) if p.is_dir()), folder)
    try:
        fd, probe = tempfile.mkstemp(dir=where, prefix=".write-probe.", suffix=TEMP_MARK)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        exc.filename = str(folder)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_texts(files: dict) -> None:
    """Write several files all or none: every temp file is written first (a full disk fails there,
    leaving the old files as they were), then all are moved into place, the first named last."""
    with contextlib.ExitStack() as stack:
        for path, text in files.items():
            stack.enter_context(atomic_path(path)).write_text(text)


def read_csv_rows(path: str | Path, columns: set[str], error=ValueError) -> list[dict]:
    """The rows of a CSV file that must have `columns` (a missing file or column raises `error`
    naming it); row i of the result is line i + 2 of the file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not columns <= set(reader.fieldnames or []):
            raise error(f"{path}: needs the columns {','.join(sorted(columns))} "
                        f"(found {', '.join(reader.fieldnames or [])})")
        return list(reader)


def save_figure(fig, save, dpi: int = 100):
    """Write fig to `save` atomically when a path is given (the format follows its suffix); return fig."""
    if save is not None:
        save = Path(save)
        with atomic_path(save, suffix=save.suffix) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    return fig


# --- run.json ------------------------------------------------------------------------------
PACKAGES = ("maskcycle", "torch", "torchvision", "numpy", "pillow", "papermill", "torch-fidelity",
            "pandas", "matplotlib", "seaborn", "opencv-python-headless", "scipy", "statsmodels")


def git_state(cwd: str | Path | None = None) -> dict:
    """Commit and dirty flag of the checkout holding this package (None outside git)."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info(device: str = "auto") -> dict:
    import torch

    info = {"requested": device, "cuda_available": torch.cuda.is_available(),
            "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def update_run_json(folder: str | Path, **fields) -> dict:
    """Merge fields into folder/run.json (written atomically) and return the whole record."""
    path = Path(folder) / "run.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    record.update(fields)
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")
    return record


def start_run(folder: str | Path, device: str = "auto") -> dict:
    """Record a (re)start: environment now, and the earlier starts kept in `attempts`."""
    path = Path(folder) / "run.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    attempts = previous.get("attempts", [])
    if previous.get("start"):
        attempts.append({k: previous.get(k) for k in ("start", "end", "status", "error")})
    return update_run_json(folder, git=git_state(), packages=package_versions(), device=device_info(device),
                           start=utc_now(), end=None, status="running", error=None, attempts=attempts)
