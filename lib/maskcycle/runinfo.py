"""run.json: what a result depends on (git commit and dirty flag, package versions, device, times)."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path

from maskcycle.config import atomic_write_text

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


def now() -> str:
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
                           start=now(), end=None, status="running", error=None, attempts=attempts)
