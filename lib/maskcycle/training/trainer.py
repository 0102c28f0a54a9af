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
import io
import json
import math
import time
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from maskcycle.config import RUN_CONTROL_FIELDS, ConfigError, TrialConfig, resolve_device
from maskcycle.data.unpaired import UnpairedData, fixed_samples
from maskcycle.io import atomic_path, atomic_write_text, start_run, update_run_json, utc_now
from maskcycle.models import checkpoints
from maskcycle.models.cyclegan import (
    LOSS_NAMES,
    CycleGAN,
    build_cyclegan,
    configure_backends,
    train_step,
    translate_batch,
)
from maskcycle.models.optim import step_scheduler
from maskcycle.training import ddp
from maskcycle.training.launch import launch

LOSS_COLUMNS = ("epoch", "batch", "images", "lr") + LOSS_NAMES
# Fields that may differ between a checkpoint and a resumed run without changing the result.


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; the message names the loss and the iteration."""


class LossLog:
    """losses.csv, one row per iteration. Rows stay on the device until `flush`, so the hot loop
    never waits for the GPU; flush checks every value and raises on the first non-finite one."""

    def __init__(self, path: Path | None, keep_until_images: int):
        self.path = path  # None: check the losses but write nothing (DDP ranks other than 0)
        self.pending: list[tuple[int, int, int, float, torch.Tensor]] = []
        if path is not None:
            self._truncate(keep_until_images)

    def _truncate(self, images: int) -> None:
        # Rows written after the checkpoint we resume from belong to iterations that will rerun.
        if not self.path.exists():
            atomic_write_text(self.path, ",".join(LOSS_COLUMNS) + "\n")
            return
        with self.path.open() as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[2]) <= images]
        if len(kept) != len(rows):
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(kept)
            atomic_write_text(self.path, buf.getvalue())

    def add(self, epoch: int, batch: int, images: int, lr: float, losses: dict[str, torch.Tensor]) -> None:
        self.pending.append((epoch, batch, images, lr, torch.stack([losses[k] for k in LOSS_NAMES])))

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
                f"loss {LOSS_NAMES[col]!r} is {values[row, col].item()} at iteration {images} "
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


def _save_samples(m: CycleGAN, samples, path: Path) -> None:
    real_A, real_B = (s.to(next(m.G_AB.parameters()).device) for s in samples)
    fake_B = translate_batch(m.G_AB, real_A, m.cfg)
    rec_A = translate_batch(m.G_BA, fake_B, m.cfg)
    fake_A = translate_batch(m.G_BA, real_B, m.cfg)
    rec_B = translate_batch(m.G_AB, fake_A, m.cfg)
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


def _train(cfg: TrialConfig, out: Path, stop_after_epochs: int | None, progress: bool,
           r: ddp.Rank, device: torch.device) -> bool:
    import tqdm

    with ddp.main_first(r):  # rank 0 builds the image cache, the others then read it
        data = ddp.shard_data(UnpairedData(cfg.dataroot, cfg), cfg, r)
        samples = fixed_samples(cfg.dataroot, cfg, cfg.n_samples)
    m = build_cyclegan(cfg, device)
    configure_backends(cfg, device)  # cudnn autotuning on the fast CUDA path
    step_m = ddp.wrap(m, r, device)  # m itself for one process; m keeps the bare networks
    latest = out / "checkpoints" / "latest.pt"

    start_epoch, start_batch, images, loss_G_sum, loss_G_n, last_loss_G, wall = 1, 0, 0, 0.0, 0, None, 0.0
    if latest.exists():
        state = checkpoints.load(latest)
        _check_resumable(state["config"], cfg, latest)
        m.load_state_dict(state["model"])
        ddp.restore_rank_state(m, state, r, latest)
        start_epoch, start_batch, images = state["epoch"], state["batch"], state["images"]
        loss_G_sum, loss_G_n, last_loss_G = state["loss_G_sum"], state["loss_G_n"], state["last_loss_G"]
        wall = state["wall_s"]
    if r.is_main:
        cfg.to_yaml(out / "config.yaml")
    log = LossLog(out / "losses.csv" if r.is_main else None, images)

    def save_state(epoch: int, batch: int) -> None:
        log.flush()  # raises on a bad loss before a bad state can be saved
        extra = ddp.checkpoint_extra(m, r)  # every rank's pools and RNG (a collective)
        if not r.is_main:
            return
        checkpoints.atomic_save({
            "format": checkpoints.STATE_FORMAT, "config": cfg.to_dict(), "model": m.state_dict(),
            "epoch": epoch, "batch": batch, "images": images, "loss_G_sum": loss_G_sum,
            "loss_G_n": loss_G_n, "last_loss_G": last_loss_G, "wall_s": wall + time.perf_counter() - t0, **extra,
        }, latest)

    t0 = time.perf_counter()
    completed = start_epoch - 1
    n_batches, epochs_run = data.n_batches(), 0
    next_latest = (images // cfg.save_latest_freq + 1) * cfg.save_latest_freq
    for epoch in range(start_epoch, cfg.total_epochs + 1):
        if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
            break
        if start_batch == 0 and cfg.lr_step_at == "start":
            for sched in (m.sched_G, m.sched_D):
                step_scheduler(sched, cfg, last_loss_G)
        plan = data.plan(epoch)
        lr = m.opt_G.param_groups[0]["lr"]
        epoch_t0, epoch_images = time.perf_counter(), 0
        bar = tqdm.tqdm(range(start_batch, n_batches), desc=f"{cfg.name} epoch {epoch}/{cfg.total_epochs}",
                        disable=not (progress and r.is_main), leave=False, mininterval=1.0)
        loss_G_acc = torch.zeros((), device=device)
        for b in bar:
            real_A, real_B = data.batch(plan, b, device)
            losses = ddp.mean_losses(train_step(step_m, real_A, real_B), r)
            images += len(real_A) * r.world_size  # global images, as one process counts them
            epoch_images += len(real_A) * r.world_size
            loss_G_acc += sum(losses[k] for k in ("G_AB", "G_BA", "cycle_A", "cycle_B", "idt_AB", "idt_BA"))
            loss_G_n += 1
            log.add(epoch, b, images, lr, losses)
            if len(log.pending) >= cfg.log_freq or b == n_batches - 1:
                rows = log.pending[-1][4].tolist()
                log.flush()
                rate = epoch_images / max(time.perf_counter() - epoch_t0, 1e-9)
                bar.set_postfix({k: f"{v:.3g}" for k, v in zip(LOSS_NAMES, rows)} | {"img/s": f"{rate:.2f}"})
            if images >= next_latest and b < n_batches - 1:
                loss_G_sum += float(loss_G_acc)
                loss_G_acc.zero_()
                save_state(epoch, b + 1)
                next_latest += cfg.save_latest_freq
        bar.close()
        loss_G_sum += float(loss_G_acc)
        last_loss_G = loss_G_sum / max(loss_G_n, 1)
        loss_G_sum, loss_G_n, start_batch = 0.0, 0, 0
        if cfg.lr_step_at == "end":
            for sched in (m.sched_G, m.sched_D):
                step_scheduler(sched, cfg, last_loss_G)
        if r.is_main:
            _save_samples(m, samples, out / "samples" / f"epoch_{epoch:03d}.png")
        if r.is_main and (epoch % cfg.save_epoch_freq == 0 or epoch == cfg.total_epochs):
            checkpoints.save_generators(out / "checkpoints" / f"epoch_{epoch:03d}.pt", cfg, m.G_AB, m.G_BA, epoch)
        save_state(epoch + 1, 0)
        while next_latest <= images:
            next_latest += cfg.save_latest_freq
        epochs_run += 1
        if r.is_main:
            _write_metrics(out, cfg, epoch, images, wall + time.perf_counter() - t0, last_loss_G,
                           epoch_images / max(time.perf_counter() - epoch_t0, 1e-9))
        completed = epoch
    return completed >= cfg.total_epochs


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maskcycle.training.trainer", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="a TrialConfig YAML")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides")
    parser.add_argument("--out", required=True, help="the trial folder (resumed if it has a checkpoint)")
    parser.add_argument("--stop-after-epochs", type=int, default=None)
    args = parser.parse_args(argv)
    cfg = TrialConfig.from_yaml(args.config, args.set)
    out = train(cfg, args.out, stop_after_epochs=args.stop_after_epochs)
    if ddp.env_rank().is_main:  # under torchrun only rank 0 reports
        print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
