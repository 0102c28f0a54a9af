"""The trainer: epochs, lr schedule, logging, sample grids, checkpoints and exact resume.

    maskcycle train --params params/demo/baseline.yaml --out results/demo/baseline
    python -m maskcycle.training.trainer --config results/x/config.yaml --out results/x

Rerunning into the same folder resumes from `checkpoints/latest.pt` and continues exactly:
networks, optimisers, schedulers, image pools, RNG states, epoch and iteration. A trial folder:
  config.yaml, losses.csv, metrics.json, samples/epoch_NNN.png, checkpoints/latest.pt (full
  state), checkpoints/previous.pt (the full state saved before it), checkpoints/epoch_NNN.pt
  (generators only), .lock (held while a training runs there: a second one is refused).
SIGTERM (SLURM's notice before preemption) and Ctrl-C stop the run with run.json "stopped"; after
SIGTERM the batch under way ends and latest.pt is written first (one process; under DDP the ranks
could not agree on where to stop, so there it ends as SIGINT does).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import torch
import tqdm
from torchvision.utils import make_grid, save_image

from maskcycle.config import RUN_CONTROL_FIELDS, ConfigError, TrialConfig, at_least, resolve_device
from maskcycle.data.cache import content_fingerprint
from maskcycle.data.paired import PairedData
from maskcycle.data.unpaired import UnpairedData, fixed_samples
from maskcycle.io import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    check_output,
    folder_lock,
    remove_stale_temps,
    start_run,
    update_run_json,
    utc_now,
)
from maskcycle.models import checkpoints, execution
from maskcycle.models.families import Family, Model, family
from maskcycle.models.optim import step_scheduler
from maskcycle.models.runtime import configure_backends, translate_batch
from maskcycle.training import ddp
from maskcycle.training.errors import NonFiniteLossError
from maskcycle.training.launch import launch

INDEX_COLUMNS = ("epoch", "batch", "images", "lr")


class TrainingStopped(Exception):
    """SIGTERM arrived; the run saved latest.pt at the end of a batch and stopped (resumable)."""

    exit_status = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM


class LossLog:
    """losses.csv, one row per iteration. Rows stay on the device until `flush`, so the hot loop
    never waits for the GPU; flush checks every value and raises on the first non-finite one."""

    def __init__(self, path: Path | None, keep_until_images: int, names: tuple[str, ...]):
        self.path = path  # None: check the losses but write nothing (DDP ranks other than 0)
        self.names = names
        self.pending: list[tuple[int, int, int, float, torch.Tensor]] = []
        if path is not None:
            self._truncate(keep_until_images)

    def _truncate(self, images: int) -> None:
        # Rows written after the checkpoint we resume from belong to iterations that will rerun.
        if not self.path.exists():
            atomic_write_text(self.path, ",".join(INDEX_COLUMNS + self.names) + "\n")
            return
        text = self.path.read_text(errors="replace")
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines = lines[:-1]  # cut mid-write by a kill: that iteration reruns anyway
        rows = list(csv.reader(lines)) or [list(INDEX_COLUMNS + self.names)]
        kept = [rows[0]] + [r for r in rows[1:] if _row_images(r, len(rows[0])) <= images]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(kept)
        if buf.getvalue() != text:
            atomic_write_text(self.path, buf.getvalue())

    def add(self, epoch: int, batch: int, images: int, lr: float, losses: dict[str, torch.Tensor]) -> None:
        self.pending.append((epoch, batch, images, lr, torch.stack([losses[k] for k in self.names])))

    def flush(self) -> None:
        if not self.pending:
            return
        values = torch.stack([p[4] for p in self.pending]).cpu()
        bad = ~torch.isfinite(values)
        if bad.any():
            row, col = (int(i) for i in bad.nonzero()[0])
            epoch, batch, images = self.pending[row][:3]
            self.pending.clear()
            raise NonFiniteLossError(
                f"loss {self.names[col]!r} is {values[row, col].item()} at iteration {images} "
                f"(epoch {epoch}, batch {batch}); the trial stopped, the last good checkpoint is kept"
            )
        if self.path is None:
            self.pending.clear()
            return
        with self.path.open("a") as f:
            for (epoch, batch, images, lr, _), v in zip(self.pending, values.tolist()):
                f.write(f"{epoch},{batch},{images},{lr:.8g}," + ",".join(f"{x:.6g}" for x in v) + "\n")
        self.pending.clear()


def _row_images(row: list[str], width: int) -> float:
    """The images column of a losses.csv row of `width` fields (the header's: each model family
    logs its own losses); inf for a damaged row (so it is dropped)."""
    try:
        return int(row[2]) if len(row) == width else math.inf
    except ValueError:
        return math.inf


def _check_resumable(saved: dict, cfg: TrialConfig, path: Path) -> None:
    """The saved run's settings equal cfg's (run-control fields aside). Another dataroot is
    accepted only when it holds the same files (names and sizes: the data set was moved)."""
    config, fingerprint = saved["config"], saved.get("data_fingerprint")
    differs = sorted(k for k, v in cfg.to_dict().items()
                     if k not in RUN_CONTROL_FIELDS and config.get(k) != v
                     and not (k in execution.EXECUTION_FIELDS and v == "auto"))  # auto keeps the saved path
    if differs == ["dataroot"] and fingerprint is not None and fingerprint == data_fingerprint(cfg.dataroot):
        return
    if differs:
        detail = ", ".join(f"{k}: {config.get(k)!r} -> {getattr(cfg, k)!r}" for k in differs)
        why = " (it holds other images)" if differs == ["dataroot"] else ""
        raise ResumeRefused(
            f"{path}: the trial folder holds a run with other settings ({detail}){why}; "
            "use a new output folder or the same settings to resume"
        )


def data_fingerprint(dataroot: str | Path) -> str:
    """What the training folders hold (names and sizes), saved in latest.pt."""
    return "/".join(content_fingerprint(Path(dataroot) / f"train{d}") for d in "AB")


def _save_samples(m, samples, path: Path) -> None:
    G_AB, G_BA = m.G_AB, m.G_BA
    real_A, real_B = (s.to(next((G_AB or G_BA).parameters()).device) for s in samples)

    def apply(G, x):  # a direction the model does not learn stays a grey (0) row
        return translate_batch(G, x, m.cfg) if G is not None else torch.zeros_like(x)

    fake_B, fake_A = apply(G_AB, real_A), apply(G_BA, real_B)
    rec_A, rec_B = apply(G_BA, fake_B), apply(G_AB, fake_A)
    # rows: real A, fake B, rec A, real B, fake A, rec B
    grid = make_grid(torch.cat([real_A, fake_B, rec_A, real_B, fake_A, rec_B]).cpu(),
                     nrow=len(real_A), normalize=True, value_range=(-1, 1), padding=2, pad_value=1.0)
    with atomic_path(path, suffix=".png") as tmp:
        save_image(grid, tmp)


class ResumeRefused(ConfigError):
    """The trial folder holds a run this call cannot continue (other settings, unreadable
    checkpoints); run.json is left as it was, so a refused rerun never marks a finished trial failed."""


def train(cfg: TrialConfig, out_dir: str | Path, stop_after_epochs: int | None = None,
          progress: bool = True) -> Path:
    """Train (or resume) the trial in `out_dir` and return that folder.

    `stop_after_epochs` ends this call after that many epochs (the run stays resumable).
    run.json records the environment and the outcome (finished / stopped / failed + error).
    A trial asking for several processes, called outside torchrun, starts torchrun as a child
    process (`launch`), never multiprocessing inside a notebook's kernel."""
    if ddp.world_size(cfg) > 1 and not ddp.under_torchrun():
        return launch(cfg, out_dir, stop_after_epochs=stop_after_epochs)
    out = Path(out_dir)
    # Under torchrun (cfg.nproc * cfg.nnodes > 1) this joins the process group; rank 0 records.
    r, device = ddp.setup(cfg, resolve_device(cfg.device))
    try:
        with _recorded(out, r, cfg) as record:  # lock, SIGTERM, run.json
            run, state = _start(cfg, out, progress, r, device, record.stop)  # resumes, or ResumeRefused
            epochs_run = 0
            while state.epoch <= cfg.total_epochs and epochs_run != stop_after_epochs:
                _run_epoch(run, state)  # ends with the epoch's samples, checkpoints and metrics
                epochs_run += 1
                if record.stop.is_set() and state.epoch <= cfg.total_epochs:
                    raise TrainingStopped(f"SIGTERM: stopped after epoch {state.epoch - 1}; latest.pt saved")
            record.finished = state.epoch > cfg.total_epochs
    finally:
        ddp.teardown(r)
    return out


@dataclasses.dataclass
class _Record:
    stop: threading.Event
    finished: bool = False


@contextlib.contextmanager
def _recorded(out: Path, r: ddp.Rank, cfg: TrialConfig):
    """The folder's lock (rank 0), SIGTERM handling, and run.json around the block: running, then
    finished / stopped (Ctrl-C, SIGTERM, `stop_after_epochs`) / failed, or as it was before when
    the block refused the folder's earlier run (ResumeRefused)."""
    path = out / "run.json"
    with (folder_lock(out, "a training") if r.is_main else contextlib.nullcontext()), \
            _sigterm_stops(enabled=not r.active) as stop:
        before = path.read_bytes() if r.is_main and path.exists() else None
        if r.is_main:
            remove_stale_temps(out, ("checkpoints", "samples"))
            start_run(out, cfg.device)
            if r.active:
                update_run_json(out, distributed={"world_size": r.world_size, "nproc": cfg.nproc,
                                                  "nnodes": cfg.nnodes, "backend": ddp.backend()})
        record = _Record(stop)
        try:
            yield record
        except (KeyboardInterrupt, TrainingStopped) as exc:
            if r.is_main:
                update_run_json(out, end=utc_now(), status="stopped",
                                error=f"{type(exc).__name__}: {exc or 'interrupted'}; rerun to resume")
            raise
        except ResumeRefused:
            if r.is_main:
                atomic_write_bytes(path, before) if before is not None else path.unlink(missing_ok=True)
            raise
        except BaseException as exc:
            if r.is_main:
                update_run_json(out, end=utc_now(), status="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        if r.is_main:
            update_run_json(out, end=utc_now(), status="finished" if record.finished else "stopped")


@contextlib.contextmanager
def _sigterm_stops(enabled: bool = True):
    """While training: a first SIGTERM asks the run to stop after the batch under way (`stop.is_set()`),
    a second one interrupts at once. Only the main thread can take signals."""
    stop = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_sigterm(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt("second SIGTERM")
        stop.set()

    before = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, before)


@dataclasses.dataclass
class RunState:
    """Where a run stands, saved in latest.pt: the next (epoch, batch) to run, images seen, the
    running generator loss of the current epoch (for the plateau schedule), and training wall time."""

    epoch: int = 1
    batch: int = 0
    images: int = 0
    loss_G_sum: float = 0.0
    loss_G_n: int = 0
    last_loss_G: float | None = None
    wall_s: float = 0.0

    @classmethod
    def from_checkpoint(cls, state: dict) -> RunState:
        return cls(**{f.name: state[f.name] for f in dataclasses.fields(cls)})


@dataclasses.dataclass
class Run:
    """One call's training context: what `_run_epoch` and `_save_state` need besides the state."""

    cfg: TrialConfig
    out: Path
    fam: Family  # the trial's model family (models/families.py)
    m: Model  # a model of that family
    step_m: Model  # m, or its DDP wrapper
    data: object
    samples: tuple
    log: LossLog
    r: ddp.Rank
    device: torch.device
    progress: bool
    stop: threading.Event
    data_key: str = ""  # data_fingerprint(cfg.dataroot), saved in latest.pt
    asked: TrialConfig | None = None  # cfg as asked ("auto" kept): what checkpoints and config.yaml hold
    execution: dict = dataclasses.field(default_factory=dict)  # execution.Execution.record(), saved in latest.pt
    t0: float = dataclasses.field(default_factory=time.perf_counter)  # this call's start, for wall_s
    epoch_img_per_s: float = 0.0  # of the last epoch run, for metrics.json
    next_latest: int = 0  # image count of the next mid-epoch save of latest.pt

    @property
    def latest(self) -> Path:
        return self.out / "checkpoints" / "latest.pt"


def _start(cfg: TrialConfig, out: Path, progress: bool, r: ddp.Rank, device: torch.device,
           stop: threading.Event) -> tuple[Run, RunState]:
    """Build data and models, and resume from latest.pt when the folder has one (ResumeRefused
    when its run had other settings or no checkpoint can be read). "auto" execution settings are
    decided here for `device` (a resumed run keeps the path it started with)."""
    fam = family(cfg)
    try:
        saved, path = checkpoints.load_state(out / "checkpoints" / "latest.pt")
    except checkpoints.CheckpointError as exc:
        raise ResumeRefused(str(exc)) from None
    if saved is not None:
        _check_resumable(saved, cfg, path)
    exe = execution.resolve(cfg, device, _saved_execution(saved))
    asked, cfg = cfg, exe.cfg
    if r.is_main:
        print(exe.summary(), file=sys.stderr)
        execution.warn_if_emulated(exe)
        update_run_json(out, execution=exe.record())
    with ddp.main_first(r):  # rank 0 builds the image cache, the others then read it
        data = ddp.shard_data((PairedData if fam.NEEDS_PAIRS else UnpairedData)(cfg.dataroot, cfg), cfg, r)
        samples = fixed_samples(cfg.dataroot, cfg, cfg.n_samples)
    m = fam.build(cfg, device)
    configure_backends(cfg, device)  # cudnn autotuning on the fast CUDA path
    # Wrapped before resuming: DDP's constructor syncs from rank 0 and must not run over the
    # per-rank state restored below (tests/test_ddp.py resumes exactly only in this order).
    step_m = ddp.wrap(m, r, device)  # m itself for one process; m keeps the bare networks
    state = RunState()
    if saved is not None:
        m.load_state_dict(saved["model"])
        ddp.restore_rank_state(m, saved, r, path)
        state = RunState.from_checkpoint(saved)
    if r.is_main:
        asked.to_yaml(out / "config.yaml")  # as asked ("auto" stays auto); run.json says what ran
    log = LossLog(out / "losses.csv" if r.is_main else None, state.images, fam.loss_names(cfg))
    run = Run(cfg, out, fam, m, step_m, data, samples, log, r, device, progress, stop, data_fingerprint(cfg.dataroot),
              asked=asked, execution=exe.record())
    run.next_latest = (state.images // cfg.save_latest_freq + 1) * cfg.save_latest_freq
    return run, state


def _saved_execution(saved: dict | None) -> dict | None:
    """The execution path of the run being resumed: its record, or (checkpoints from before "auto")
    the concrete values of its saved config."""
    if saved is None:
        return None
    return saved.get("execution") or {k: saved["config"][k] for k in execution.EXECUTION_FIELDS
                                      if saved["config"].get(k, "auto") != "auto"}


def _save_state(run: Run, state: RunState) -> None:
    """latest.pt: models, optimisers, schedulers, pools, RNG (every rank's under DDP) and `state`."""
    run.log.flush()  # raises on a bad loss before a bad state can be saved
    extra = ddp.checkpoint_extra(run.m, run.r)  # every rank's pools and RNG (a collective)
    if not run.r.is_main:
        return
    fields = dataclasses.asdict(state) | {"wall_s": state.wall_s + time.perf_counter() - run.t0}
    checkpoints.save_state({"format": checkpoints.STATE_FORMAT, "config": (run.asked or run.cfg).to_dict(),
                            "execution": run.execution, "data_fingerprint": run.data_key,
                            "model": run.m.state_dict(), **fields, **extra}, run.latest)


def _run_epoch(run: Run, state: RunState) -> None:
    """Epoch `state.epoch` from batch `state.batch` on: the family's step per batch, latest.pt every
    save_latest_freq images, and at the end the schedule, samples, checkpoints and metrics."""
    cfg, r = run.cfg, run.r
    if state.batch == 0 and cfg.lr_step_at == "start":
        for sched in run.fam.schedulers(run.m):
            step_scheduler(sched, cfg, state.last_loss_G)
    n_batches, plan = run.data.n_batches(), run.data.plan(state.epoch)
    lr = run.m.opt_G.param_groups[0]["lr"]
    epoch_t0, epoch_images = time.perf_counter(), 0
    bar = tqdm.tqdm(range(state.batch, n_batches), desc=f"{cfg.name} epoch {state.epoch}/{cfg.total_epochs}",
                    disable=not (run.progress and r.is_main), leave=False, mininterval=1.0)
    loss_G_acc = torch.zeros((), device=run.device)  # summed on the device: no host sync per step
    g_terms = run.fam.g_loss_terms(cfg)
    for b in bar:
        real_A, real_B = run.data.batch(plan, b, run.device)
        losses = ddp.mean_losses(run.fam.train_step(run.step_m, real_A, real_B), r)
        state.images += len(real_A) * r.world_size  # global images, as one process counts them
        epoch_images += len(real_A) * r.world_size
        loss_G_acc += sum(losses[k] for k in g_terms)
        state.loss_G_n += 1
        run.log.add(state.epoch, b, state.images, lr, losses)
        if len(run.log.pending) >= cfg.log_freq or b == n_batches - 1:
            rows = run.log.pending[-1][4].tolist()
            run.log.flush()
            rate = epoch_images / max(time.perf_counter() - epoch_t0, 1e-9)
            bar.set_postfix({k: f"{v:.3g}" for k, v in zip(run.log.names, rows)} | {"img/s": f"{rate:.2f}"})
        stopping = run.stop.is_set() and b < n_batches - 1  # at the epoch's end, _end_epoch saves
        if (state.images >= run.next_latest or stopping) and b < n_batches - 1:
            state.loss_G_sum += float(loss_G_acc)
            loss_G_acc.zero_()
            state.batch = b + 1
            _save_state(run, state)
            run.next_latest += cfg.save_latest_freq if state.images >= run.next_latest else 0
        if stopping:
            bar.close()
            raise TrainingStopped(f"SIGTERM: stopped after epoch {state.epoch} batch {b}; latest.pt saved")
    bar.close()
    state.loss_G_sum += float(loss_G_acc)
    run.epoch_img_per_s = epoch_images / max(time.perf_counter() - epoch_t0, 1e-9)
    _end_epoch(run, state)
    while run.next_latest <= state.images:
        run.next_latest += cfg.save_latest_freq


def _end_epoch(run: Run, state: RunState) -> None:
    """Schedule (end-stepping policies), samples, epoch checkpoint, latest.pt, metrics.json."""
    cfg, m, epoch = run.cfg, run.m, state.epoch
    state.last_loss_G = state.loss_G_sum / max(state.loss_G_n, 1)
    state.loss_G_sum, state.loss_G_n, state.batch = 0.0, 0, 0
    if cfg.lr_step_at == "end":
        for sched in run.fam.schedulers(m):
            step_scheduler(sched, cfg, state.last_loss_G)
    if run.r.is_main:
        _save_samples(m, run.samples, run.out / "samples" / f"epoch_{epoch:03d}.png")
        if epoch % cfg.save_epoch_freq == 0 or epoch == cfg.total_epochs:
            checkpoints.save_generators(run.out / "checkpoints" / f"epoch_{epoch:03d}.pt", run.asked or cfg,
                                        m.G_AB, m.G_BA, epoch)
    state.epoch += 1
    _save_state(run, state)
    if run.r.is_main:
        _write_metrics(run.out, cfg, epoch, state.images, state.wall_s + time.perf_counter() - run.t0,
                       state.last_loss_G, run.epoch_img_per_s)


def _write_metrics(out: Path, cfg: TrialConfig, epoch: int, images: int, wall: float, loss_G: float,
                   img_per_s: float) -> None:
    path = out / "metrics.json"
    metrics = json.loads(path.read_text()) if path.exists() else {}
    metrics.update(
        epochs_done=epoch, epochs_total=cfg.total_epochs, images_seen=images,
        train_wall_s=round(wall, 3), last_epoch_img_per_s=round(img_per_s, 3),
        last_epoch_mean_loss_G=loss_G if math.isfinite(loss_G) else None,
        finished=epoch >= cfg.total_epochs,
    )
    atomic_write_text(path, json.dumps(metrics, indent=2) + "\n")


# --- command line ------------------------------------------------------------------------
def add_arguments(p) -> None:
    """`maskcycle train` (and `python -m maskcycle.training.trainer`, what torchrun starts)."""
    p.add_argument("--params", "--config", dest="params", required=True, help="trial YAML (TrialConfig fields)")
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE", help="override settings")
    p.add_argument("--out", required=True, help="trial folder; resumed when it holds a checkpoint")
    p.add_argument("--stop-after-epochs", type=at_least(1), default=None, help="end this call after N epochs")


def run_command(args) -> int:
    cfg = TrialConfig.from_yaml(args.params, args.set)
    check_output(args.out, [("--params", args.params), ("dataroot", cfg.dataroot)], own=("config.yaml",))
    try:
        out = train(cfg, args.out, stop_after_epochs=args.stop_after_epochs)
    except TrainingStopped as exc:
        print(f"maskcycle train: stopped: {exc}; rerun the same command to resume", file=sys.stderr)
        return TrainingStopped.exit_status
    if ddp.env_rank().is_main:  # under torchrun only rank 0 reports
        print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maskcycle.training.trainer", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
