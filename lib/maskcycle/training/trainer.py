"""The trainer: epochs, lr schedule, logging, sample grids, checkpoints and exact resume.

    maskcycle train --params params/demo/baseline.yaml --out results/demo/baseline
    python -m maskcycle.training.trainer --config results/x/config.yaml --out results/x

Rerunning into the same folder resumes from `checkpoints/latest.pt` and continues exactly:
networks, optimisers, schedulers, image pools, RNG states, epoch and iteration. A trial folder:
  config.yaml, losses.csv, metrics.json, samples/epoch_NNN.png,
  checkpoints/latest.pt (full state), checkpoints/epoch_NNN.pt (generators only).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import time
from pathlib import Path

import torch
import tqdm
from torchvision.utils import make_grid, save_image

from maskcycle.config import RUN_CONTROL_FIELDS, ConfigError, TrialConfig, resolve_device
from maskcycle.data.paired import PairedData
from maskcycle.data.unpaired import UnpairedData, fixed_samples
from maskcycle.io import atomic_path, atomic_write_text, start_run, update_run_json, utc_now
from maskcycle.models import checkpoints
from maskcycle.models.cyclegan import LOSS_NAMES, configure_backends, translate_batch
from maskcycle.models.families import build_model, g_loss_terms, loss_names, schedulers, train_step
from maskcycle.models.optim import step_scheduler
from maskcycle.training import ddp
from maskcycle.training.errors import NonFiniteLossError
from maskcycle.training.launch import launch

INDEX_COLUMNS = ("epoch", "batch", "images", "lr")
LOSS_COLUMNS = INDEX_COLUMNS + LOSS_NAMES  # CycleGAN's; other families log their own LOSS_NAMES


class LossLog:
    """losses.csv, one row per iteration. Rows stay on the device until `flush`, so the hot loop
    never waits for the GPU; flush checks every value and raises on the first non-finite one."""

    def __init__(self, path: Path | None, keep_until_images: int, names: tuple[str, ...] = LOSS_NAMES):
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
        with self.path.open() as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[2]) <= images]
        if len(kept) != len(rows):
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(kept)
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


def _check_resumable(saved: dict, cfg: TrialConfig, path: Path) -> None:
    differs = sorted(k for k, v in cfg.to_dict().items()
                     if k not in RUN_CONTROL_FIELDS and saved.get(k) != v)
    if differs:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {getattr(cfg, k)!r}" for k in differs)
        raise ConfigError(
            f"{path}: the trial folder holds a run with other settings ({detail}); "
            "use a new output folder or the same settings to resume"
        )


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


def train(cfg: TrialConfig, out_dir: str | Path, stop_after_epochs: int | None = None,
          progress: bool = True) -> Path:
    """Train (or resume) the trial in `out_dir` and return that folder.

    `stop_after_epochs` ends this call after that many epochs (the run stays resumable).
    run.json records the environment and the outcome (finished / stopped / failed + error)."""
    out = Path(out_dir)
    # Under torchrun (cfg.nproc * cfg.nnodes > 1) this joins the process group; rank 0 records.
    r, device = ddp.setup(cfg, resolve_device(cfg.device))
    try:
        if r.is_main:
            out.mkdir(parents=True, exist_ok=True)
            start_run(out, cfg.device)
            if r.active:
                update_run_json(out, distributed={"world_size": r.world_size, "nproc": cfg.nproc,
                                                          "nnodes": cfg.nnodes, "backend": ddp.backend()})
        try:
            done = _train(cfg, out, stop_after_epochs, progress, r, device)
        except BaseException as exc:
            if r.is_main:
                update_run_json(out, end=utc_now(), status="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        if r.is_main:
            update_run_json(out, end=utc_now(), status="finished" if done else "stopped")
    finally:
        ddp.teardown(r)
    return out


def train_or_launch(cfg: TrialConfig, out_dir: str | Path, stop_after_epochs: int | None = None,
                    progress: bool = True) -> Path:
    """Train the trial here, or, when it asks for several processes and this is not already a
    torchrun worker, start torchrun as a child process (`launch`). The CLI and notebook 02 call this."""
    if ddp.world_size(cfg) > 1 and not ddp.under_torchrun():
        return launch(cfg, out_dir, stop_after_epochs=stop_after_epochs)
    return train(cfg, out_dir, stop_after_epochs=stop_after_epochs, progress=progress)


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
    m: object  # a model of the trial's family (models/families.py)
    step_m: object  # m, or its DDP wrapper
    data: object
    samples: tuple
    log: LossLog
    r: ddp.Rank
    device: torch.device
    progress: bool
    t0: float = dataclasses.field(default_factory=time.perf_counter)  # this call's start, for wall_s
    epoch_img_per_s: float = 0.0  # of the last epoch run, for metrics.json

    @property
    def latest(self) -> Path:
        return self.out / "checkpoints" / "latest.pt"


def _start(cfg: TrialConfig, out: Path, progress: bool, r: ddp.Rank, device: torch.device) -> tuple[Run, RunState]:
    """Build data and models, and resume from latest.pt when the folder has one."""
    with ddp.main_first(r):  # rank 0 builds the image cache, the others then read it
        pairs = PairedData if cfg.model == "pix2pix" else UnpairedData
        data = ddp.shard_data(pairs(cfg.dataroot, cfg), cfg, r)
        samples = fixed_samples(cfg.dataroot, cfg, cfg.n_samples)
    m = build_model(cfg, device)
    configure_backends(cfg, device)  # cudnn autotuning on the fast CUDA path
    # Wrapped before resuming: DDP's constructor syncs from rank 0 and must not run over the
    # per-rank state restored below (tests/test_ddp.py resumes exactly only in this order).
    step_m = ddp.wrap(m, r, device)  # m itself for one process; m keeps the bare networks
    latest = out / "checkpoints" / "latest.pt"
    state = RunState()
    if latest.exists():
        saved = checkpoints.load(latest)
        _check_resumable(saved["config"], cfg, latest)
        m.load_state_dict(saved["model"])
        ddp.restore_rank_state(m, saved, r, latest)
        state = RunState.from_checkpoint(saved)
    if r.is_main:
        cfg.to_yaml(out / "config.yaml")
    log = LossLog(out / "losses.csv" if r.is_main else None, state.images, loss_names(cfg))
    return Run(cfg, out, m, step_m, data, samples, log, r, device, progress), state


def _save_state(run: Run, state: RunState) -> None:
    """latest.pt: models, optimisers, schedulers, pools, RNG (every rank's under DDP) and `state`."""
    run.log.flush()  # raises on a bad loss before a bad state can be saved
    extra = ddp.checkpoint_extra(run.m, run.r)  # every rank's pools and RNG (a collective)
    if not run.r.is_main:
        return
    fields = dataclasses.asdict(state) | {"wall_s": state.wall_s + time.perf_counter() - run.t0}
    checkpoints.atomic_save({"format": checkpoints.STATE_FORMAT, "config": run.cfg.to_dict(),
                             "model": run.m.state_dict(), **fields, **extra}, run.latest)


def _run_epoch(run: Run, state: RunState, next_latest: int) -> int:
    """The batches of epoch `state.epoch` from `state.batch` on; saves latest.pt every
    save_latest_freq images inside it. Returns the image count of the next mid-epoch save."""
    cfg, r = run.cfg, run.r
    n_batches, plan = run.data.n_batches(), run.data.plan(state.epoch)
    lr = run.m.opt_G.param_groups[0]["lr"]
    epoch_t0, epoch_images = time.perf_counter(), 0
    bar = tqdm.tqdm(range(state.batch, n_batches), desc=f"{cfg.name} epoch {state.epoch}/{cfg.total_epochs}",
                    disable=not (run.progress and r.is_main), leave=False, mininterval=1.0)
    loss_G_acc = torch.zeros((), device=run.device)  # summed on the device: no host sync per step
    for b in bar:
        real_A, real_B = run.data.batch(plan, b, run.device)
        losses = ddp.mean_losses(train_step(run.step_m, real_A, real_B), r)
        state.images += len(real_A) * r.world_size  # global images, as one process counts them
        epoch_images += len(real_A) * r.world_size
        loss_G_acc += sum(losses[k] for k in g_loss_terms(cfg))
        state.loss_G_n += 1
        run.log.add(state.epoch, b, state.images, lr, losses)
        if len(run.log.pending) >= cfg.log_freq or b == n_batches - 1:
            rows = run.log.pending[-1][4].tolist()
            run.log.flush()
            rate = epoch_images / max(time.perf_counter() - epoch_t0, 1e-9)
            bar.set_postfix({k: f"{v:.3g}" for k, v in zip(run.log.names, rows)} | {"img/s": f"{rate:.2f}"})
        if state.images >= next_latest and b < n_batches - 1:
            state.loss_G_sum += float(loss_G_acc)
            loss_G_acc.zero_()
            state.batch = b + 1
            _save_state(run, state)
            next_latest += cfg.save_latest_freq
    bar.close()
    state.loss_G_sum += float(loss_G_acc)
    run.epoch_img_per_s = epoch_images / max(time.perf_counter() - epoch_t0, 1e-9)
    return next_latest


def _end_epoch(run: Run, state: RunState) -> None:
    """Schedule (end-stepping policies), samples, epoch checkpoint, latest.pt, metrics.json."""
    cfg, m, epoch = run.cfg, run.m, state.epoch
    state.last_loss_G = state.loss_G_sum / max(state.loss_G_n, 1)
    state.loss_G_sum, state.loss_G_n, state.batch = 0.0, 0, 0
    if cfg.lr_step_at == "end":
        for sched in schedulers(m):
            step_scheduler(sched, cfg, state.last_loss_G)
    if run.r.is_main:
        _save_samples(m, run.samples, run.out / "samples" / f"epoch_{epoch:03d}.png")
        if epoch % cfg.save_epoch_freq == 0 or epoch == cfg.total_epochs:
            checkpoints.save_generators(run.out / "checkpoints" / f"epoch_{epoch:03d}.pt", cfg, m.G_AB, m.G_BA, epoch)
    state.epoch += 1
    _save_state(run, state)
    if run.r.is_main:
        _write_metrics(run.out, cfg, epoch, state.images, state.wall_s + time.perf_counter() - run.t0,
                       state.last_loss_G, run.epoch_img_per_s)


def _train(cfg: TrialConfig, out: Path, stop_after_epochs: int | None, progress: bool,
           r: ddp.Rank, device: torch.device) -> bool:
    """Run epochs until the last one or `stop_after_epochs`; True when every epoch is done."""
    run, state = _start(cfg, out, progress, r, device)
    next_latest = (state.images // cfg.save_latest_freq + 1) * cfg.save_latest_freq
    epochs_run = 0
    while state.epoch <= cfg.total_epochs and (stop_after_epochs is None or epochs_run < stop_after_epochs):
        if state.batch == 0 and cfg.lr_step_at == "start":
            for sched in schedulers(run.m):
                step_scheduler(sched, cfg, state.last_loss_G)
        next_latest = _run_epoch(run, state, next_latest)
        _end_epoch(run, state)
        while next_latest <= state.images:
            next_latest += cfg.save_latest_freq
        epochs_run += 1
    return state.epoch > cfg.total_epochs


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
    p.add_argument("--stop-after-epochs", type=int, default=None, help="end this call after N epochs")


def run_command(args) -> int:
    cfg = TrialConfig.from_yaml(args.params, args.set)
    out = train_or_launch(cfg, args.out, stop_after_epochs=args.stop_after_epochs)
    if ddp.env_rank().is_main:  # under torchrun only rank 0 reports
        print(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maskcycle.training.trainer", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
