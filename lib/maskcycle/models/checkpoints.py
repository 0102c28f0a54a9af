"""Checkpoint files: full training state (exact resume), generator-only epoch snapshots, and the
reference implementation's saved generators. Every load uses `weights_only=True`."""

from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path

import torch
from torch import nn

from maskcycle.config import ConfigError, TrialConfig
from maskcycle.io import atomic_path
from maskcycle.models import execution
from maskcycle.models.families import family
from maskcycle.models.networks import build_generator

STATE_FORMAT = "maskcycle-state-1"
GENERATORS_FORMAT = "maskcycle-generators-1"
PREVIOUS = "previous.pt"  # the full state saved before latest.pt, beside it
LOW_SPACE = 64 * 2**20  # bytes free below which a failed torch.save is reported as a full disk


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit the networks; names the file."""


def atomic_save(obj, path: str | Path) -> None:
    """torch.save through a synced temp file: a kill never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        _write(obj, tmp, path)


def save_state(obj, latest: str | Path) -> None:
    """atomic_save, keeping the file it replaces as `previous.pt`: a latest.pt damaged later (disk,
    copy) costs one save interval, not the run. A kill between the two renames leaves previous.pt
    only, which `load_state` then uses."""
    latest = Path(latest)
    with atomic_path(latest) as tmp:
        _write(obj, tmp, latest)
        if latest.exists():
            os.replace(latest, latest.with_name(PREVIOUS))


def _write(obj, tmp: Path, path: Path) -> None:
    try:
        with tmp.open("wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
    except RuntimeError as exc:  # torch reports a full disk as e.g. "unexpected pos N vs M"
        free = shutil.disk_usage(tmp.parent).free
        if free < LOW_SPACE:
            raise OSError(errno.ENOSPC, f"No space left on device ({free // 2**20} MiB free)", str(path)) from None
        raise CheckpointError(f"{path}: cannot write checkpoint ({str(exc).splitlines()[0]})") from None


def load(path: str | Path) -> dict:
    """Load a checkpoint safely (no arbitrary unpickling) onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"{path}: cannot load checkpoint ({_why(exc)})") from None


def _why(exc: Exception) -> str:
    # torch's message for a file holding other objects advises weights_only=False, i.e. running
    # whatever the file contains: never passed on.
    text = str(exc)
    if "weights_only" in text or "Weights only load failed" in text:
        return ("it holds Python objects other than tensors and plain values; loading them could run "
                "arbitrary code, so it is refused")
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else 'damaged file'}"


def load_state(latest: str | Path) -> tuple[dict | None, Path | None]:
    """(state, file) to resume from: latest.pt, else previous.pt beside it (named on stderr); (None,
    None) when there is neither. Both unreadable: a CheckpointError that says the way out."""
    latest = Path(latest)
    previous = latest.with_name(PREVIOUS)
    problems = []
    for path in (latest, previous):
        if not path.exists():
            continue
        try:
            state = load(path)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        if problems:
            print(f"maskcycle: warning: {problems[0]}; resuming from {path} (one save earlier)", file=sys.stderr)
        return state, path
    if problems:
        raise CheckpointError(
            "; ".join(problems) + f". Nothing to resume from: move {latest.parent.parent} aside (or delete "
            f"{latest.parent}) to train the trial again from the start, or restore the file from a backup")
    return None, None


def save_generators(path: str | Path, cfg: TrialConfig, G_AB: nn.Module | None, G_BA: nn.Module | None,
                    epoch: int) -> None:
    """The generators a trial learns (a one-way model's other direction is None and left out)."""
    nets = {name: G.state_dict() for name, G in (("G_AB", G_AB), ("G_BA", G_BA)) if G is not None}
    atomic_save({"format": GENERATORS_FORMAT, "config": cfg.to_dict(), "epoch": epoch, **nets}, path)


def load_generators(path: str | Path, device: torch.device | str = "cpu") -> tuple[
        TrialConfig, nn.Module | None, nn.Module | None]:
    """(config, G_AB, G_BA) from one of our checkpoints (full state or generator snapshot); a
    direction the trial did not learn (CUT, FastCUT, pix2pix learn one) is None."""
    state = load(path)
    if state.get("format") not in (STATE_FORMAT, GENERATORS_FORMAT):
        raise CheckpointError(
            f"{path}: not a maskcycle checkpoint (for the reference implementation's "
            "latest_net_G_A.pth / latest_net_G_B.pth use load_reference_generator)"
        )
    try:
        cfg = TrialConfig.from_dict(state["config"], source=f"{path} (saved config)")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    cfg = execution.resolve(cfg, device).cfg  # "auto": the path this device computes natively
    weights = state["model"] if state["format"] == STATE_FORMAT else state
    nets = []
    for name in ("G_AB", "G_BA"):
        if name not in weights:
            nets.append(None)
            continue
        net = family(cfg).generator(cfg)
        _load_into(net, weights[name], path)
        nets.append(net.to(device).eval())
    return cfg, nets[0], nets[1]


def load_reference_generator(path: str | Path, cfg: TrialConfig, device: torch.device | str = "cpu") -> nn.Module:
    """A generator saved by the reference CycleGAN (`*_net_G_A.pth` = our G_AB, `*_net_G_B.pth` =
    our G_BA) loaded into our network built from cfg (netG, ngf, norm must match the run).
    The reference's module layout is ours, so its keys load as they are; a "module." prefix from
    DataParallel and the stale InstanceNorm running-stat keys of old checkpoints are dropped."""
    state = load(path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    net = build_generator(cfg)
    expected = set(net.state_dict())
    state = {k: v for k, v in state.items()
             if k in expected or not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    _load_into(net, state, path)
    return net.to(device).eval()


def _load_into(net: nn.Module, state: dict, path) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: weights do not fit the network built from the config "
            f"(check netG, ngf, norm): {str(exc).splitlines()[0]} ..."
        ) from None
