"""Start one trial on several processes of this machine: torchrun as a child process.

    maskcycle.training.launch.launch(cfg, DIR)      # from Python or a notebook
    torchrun --standalone --nproc-per-node 4 -m maskcycle.training.trainer --config trial.yaml --out DIR

Multi-node trials start torchrun on every node instead (README, SLURM).
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from maskcycle.config import TrialConfig
from maskcycle.settings import ConfigError
from maskcycle.training.errors import LaunchError


def torchrun_command(cfg: TrialConfig, config_path: str | Path, out_dir: str | Path,
                     stop_after_epochs: int | None = None) -> list[str]:
    """`python -m torch.distributed.run` (= torchrun, from this interpreter) for one node."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
           "--nproc-per-node", str(cfg.nproc), "-m", "maskcycle.training.trainer",
           "--config", str(config_path), "--out", str(out_dir)]
    if stop_after_epochs is not None:
        cmd += ["--stop-after-epochs", str(stop_after_epochs)]
    return cmd


def launch(cfg: TrialConfig, out_dir: str | Path, stop_after_epochs: int | None = None,
           echo=None, progress_every_s: float = 30.0, tail_lines: int = 60) -> Path:
    """Train `cfg` in `out_dir` with cfg.nproc processes on this machine via torchrun, as a child
    process; stream its output to `echo` (default: print to stdout), return the trial folder.

    Writes the resolved config beside the trial (a temp file; the trainer writes config.yaml
    itself). Progress-bar refreshes are passed on at most every `progress_every_s` seconds so a
    notebook's output stays short. Raises LaunchError with the last lines of output on failure.
    Multi-node trials (nnodes > 1) start torchrun on every node instead (README, SLURM)."""
    if cfg.nnodes != 1:
        raise ConfigError(f"key 'nnodes': value {cfg.nnodes}: launch() starts one node; run torchrun on every "
                          "node (see README, 'Several GPUs (DDP)')")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # outside the trial folder: the trainer refuses an output folder that holds one of its inputs
    fd, name = tempfile.mkstemp(prefix=f"maskcycle_launch_{cfg.name}_", suffix=".yaml")
    os.close(fd)
    config_path = Path(name)
    cfg.to_yaml(config_path)
    echo = echo or (lambda line: print(line, flush=True))
    cmd = torchrun_command(cfg, config_path, out, stop_after_epochs)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    last_bar = -float("inf")
    try:
        for line, is_bar in _segments(proc.stdout):
            tail.append(line)
            if not is_bar:
                echo(line)
            elif time.monotonic() - last_bar >= progress_every_s:
                echo(line)
                last_bar = time.monotonic()
        rc = proc.wait()
    except BaseException:
        # interrupted (e.g. a notebook's stop button): end torchrun, which ends its workers
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        raise
    finally:
        config_path.unlink(missing_ok=True)
    if rc:
        raise LaunchError(f"torchrun with {cfg.nproc} processes for {out} exited with status {rc}; "
                          f"last lines of its output:\n" + "\n".join(tail))
    return out


def _segments(stream):
    """(text, is_progress_bar) pieces of a byte stream: '\\n'-ended lines, and '\\r'-ended bar refreshes."""
    buf = b""
    while chunk := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
        buf += chunk
        while True:
            cut = [i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0]
            if not cut:
                break
            i = min(cut)
            text = buf[:i].decode(errors="replace").rstrip()
            is_bar = buf[i:i + 1] == b"\r"
            buf = buf[i + 1:]
            if text.strip():
                yield text, is_bar
    if buf.strip():
        yield buf.decode(errors="replace").rstrip(), False
