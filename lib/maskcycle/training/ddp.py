"""One trial on several processes: torchrun starts them, DistributedDataParallel keeps them in step.

    torchrun --standalone --nproc-per-node 4 -m maskcycle.training.trainer --config trial.yaml --out DIR
    maskcycle.training.launch.launch(cfg, DIR)        # the same, from Python or a notebook

`batch_size` is the *global* batch: with `nproc` processes on `nnodes` nodes every rank trains on
batch_size / (nproc * nnodes) images per step, and DDP averages the gradients over ranks. The losses
are per-element means, so with instance norm (each image normalised on its own) and no image pool
a step on N ranks equals a one-process step on the same global batch (tests/test_ddp.py checks it).

Data: the epoch plan (maskcycle.data.unpaired) is a pure function of (seed, epoch), the role
DistributedSampler + set_epoch plays for a DataLoader; every rank draws the same plan and rank r
takes items r::world of each global batch, as DistributedSampler deals indices. The last global
batch of an epoch is cut to a multiple of the world size (at most world-1 images of that epoch are
left out; none for the study's 5124 images, batch 16, 4 GPUs).

What is per rank: the image pools (each rank keeps its own history of its own fakes, pool_size
images each, seeded from the trial seed and the rank; rank 0 uses the single-process seeds) and
the gradient-penalty RNG. Checkpoints hold every rank's pools and RNG, so each rank resumes
exactly; the networks are saved unwrapped (no "module." prefix) and load in a single process.
Rank 0 alone writes config, run.json, losses.csv, samples, metrics and checkpoints; the losses it
logs are averaged over ranks, i.e. the global-batch losses.

`norm: batch` uses SyncBatchNorm, which PyTorch implements for CUDA only: on CPU (gloo) several
processes with batch norm are refused rather than silently using per-rank statistics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from maskcycle.config import ConfigError, TrialConfig, check_processes
from maskcycle.data.unpaired import EpochPlan
from maskcycle.models.families import family
from maskcycle.models.runtime import stream_seed


@dataclasses.dataclass(frozen=True)
class Rank:
    """Where this process sits in the job (a single process is rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


SINGLE = Rank()


def world_size(cfg: TrialConfig) -> int:
    return cfg.nproc * cfg.nnodes


def under_torchrun() -> bool:
    """True in a process started by torchrun (it sets WORLD_SIZE, RANK, LOCAL_RANK)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def env_rank() -> Rank:
    """This process's rank from torchrun's environment variables (single process without them)."""
    if not under_torchrun():
        return SINGLE
    try:
        return Rank(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        raise ConfigError(f"torchrun environment: bad RANK/WORLD_SIZE/LOCAL_RANK ({exc})") from None


def setup(cfg: TrialConfig, device: torch.device) -> tuple[Rank, torch.device]:
    """Join the process group when started by torchrun with cfg.nproc * cfg.nnodes processes.

    Returns this rank and its device (cuda:LOCAL_RANK on GPUs). A single process returns SINGLE
    and `device` unchanged; a world size that differs from the config is an error."""
    r = env_rank()
    expected = world_size(cfg)
    if r.world_size != expected:
        how = ("torchrun started " + str(r.world_size)) if under_torchrun() else "no torchrun (1 process)"
        raise ConfigError(
            f"key 'nproc': nproc * nnodes = {cfg.nproc} * {cfg.nnodes} = {expected} processes, but {how}; "
            "start several processes with maskcycle.training.launch.launch(cfg, out_dir) or "
            f"`torchrun --standalone --nproc-per-node {cfg.nproc} -m maskcycle.training.trainer --config ... --out ...`"
        )
    if not r.active:
        return r, device
    if device.type == "cuda":
        if r.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"key 'nproc': value {cfg.nproc} processes on this node but only "
                              f"{torch.cuda.device_count()} GPU(s) visible (one GPU per process)")
        device = torch.device("cuda", r.local_rank)
        torch.cuda.set_device(device)
    check_processes(cfg, device.type)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        # generous timeout: rank 0 may decode the whole data set into the cache while the others wait
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None,
                                timeout=datetime.timedelta(minutes=60))
    # Anything drawn from the global RNG (dropout) differs per rank, as it would per GPU.
    torch.manual_seed(stream_seed(cfg.seed, "global", r.rank))
    return r, device


def teardown(r: Rank) -> None:
    if r.active and dist.is_initialized():
        dist.destroy_process_group()


def barrier(r: Rank) -> None:
    if r.active:
        dist.barrier()


@contextlib.contextmanager
def main_first(r: Rank):
    """Rank 0 runs the block first (e.g. builds the image cache), the others after it."""
    if not r.is_main:
        barrier(r)
    yield
    if r.is_main:
        barrier(r)


# --- data ----------------------------------------------------------------------------------
def local_batch_size(batch_size: int, world: int) -> int:
    if batch_size % world:
        raise ConfigError(f"key 'batch_size': value {batch_size} is the global batch and must be divisible "
                          f"by nproc * nnodes = {world}")
    return batch_size // world


def n_global_batches(n_items: int, batch_size: int, world: int) -> int:
    """Steps per epoch: full global batches, plus the last one if it still has one item per rank."""
    full, rest = divmod(n_items, batch_size)
    return full + (1 if rest >= world else 0)


def rank_items(n_items: int, batch_size: int, b: int, r: Rank) -> torch.Tensor:
    """Positions in the epoch plan that rank r trains on in global batch b: items r::world of it
    (the last batch cut to a multiple of the world size)."""
    start = b * batch_size
    stop = min(start + batch_size, n_items)
    stop -= (stop - start) % r.world_size
    if stop <= start:
        raise IndexError(f"global batch {b} is past the end of an epoch of {n_items} items")
    return torch.arange(start + r.rank, stop, r.world_size)


def select(plan: EpochPlan, positions: torch.Tensor) -> EpochPlan:
    return type(plan)(**{f.name: getattr(plan, f.name)[positions] for f in dataclasses.fields(plan)})


class ShardedData:
    """An UnpairedData seen by one rank: same epoch plans, batch b = this rank's share of global
    batch b. Only the public plan/batch interface of UnpairedData is used."""

    def __init__(self, data, batch_size: int, r: Rank):
        local_batch_size(batch_size, r.world_size)
        self.data, self.batch_size, self.r = data, batch_size, r

    def __len__(self) -> int:
        return len(self.data)

    def n_batches(self) -> int:
        return n_global_batches(len(self.data), self.batch_size, self.r.world_size)

    def plan(self, epoch: int) -> EpochPlan:
        return self.data.plan(epoch)

    def batch(self, plan: EpochPlan, b: int, device: torch.device | str = "cpu"):
        part = select(plan, rank_items(len(plan), self.batch_size, b, self.r))
        return self.data.batch(part, 0, device)  # the share is at most one data batch long


def shard_data(data, cfg: TrialConfig, r: Rank):
    """`data` itself for one process, else this rank's ShardedData view of it."""
    return ShardedData(data, cfg.batch_size, r) if r.active else data


# --- model ---------------------------------------------------------------------------------
def wrap(m, r: Rank, device: torch.device):
    """A model sharing m's optimisers, schedulers and pools whose networks (the family's
    `networks(m)`) run through DistributedDataParallel (after SyncBatchNorm conversion for norm
    batch). Step with the returned object; save, sample and checkpoint with `m` (bare networks, no
    "module." prefix). Reseeds m's per-rank random streams (the family's) for this rank."""
    if not r.active:
        return m
    fam = family(m.cfg)
    if r.rank:
        fam.seed_rank_streams(m, r.rank)
    kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
    wrapped = {}
    for name in fam.networks(m):
        net: nn.Module = getattr(m, name)
        if m.cfg.norm == "batch":
            # in place for our networks (their top module is not a norm layer); the same
            # Parameter objects stay in the optimisers
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            setattr(m, name, net)
        wrapped[name] = DistributedDataParallel(net, **kwargs)
    return dataclasses.replace(m, **wrapped)


def mean_losses(losses: dict[str, torch.Tensor], r: Rank) -> dict[str, torch.Tensor]:
    """The per-rank losses averaged over ranks (= the losses of the global batch); one all-reduce
    of a small vector, no host sync. Every rank gets the same numbers, so schedulers fed with a
    loss (plateau on loss_G) stay equal across ranks."""
    if not r.active:
        return losses
    names = list(losses)
    v = torch.stack([losses[k] for k in names])
    dist.all_reduce(v)  # SUM: gloo has no AVG
    v = v / r.world_size
    return {k: v[i] for i, k in enumerate(names)}


def checkpoint_extra(m, r: Rank) -> dict:
    """Entries a multi-process checkpoint adds: every rank's own state, gathered on rank 0 (a
    collective: every rank calls it at the same step). Empty for one process."""
    if not r.active:
        return {}
    gathered = [None] * r.world_size if r.is_main else None
    dist.gather_object(m.rank_state(), gathered, dst=0)
    return {"world_size": r.world_size, "rank_states": gathered}


def restore_rank_state(m, state: dict, r: Rank, path) -> None:
    """After m.load_state_dict(state["model"]) (rank 0's pools): put this rank's own pools and RNG
    back. A checkpoint from another world size is refused (the config check catches it first)."""
    if not r.active:
        return
    saved = state.get("world_size", 1)
    if saved != r.world_size or "rank_states" not in state:
        raise ConfigError(f"{path}: saved by {saved} process(es), cannot resume exactly on {r.world_size}")
    m.load_rank_state(state["rank_states"][r.rank])


def backend() -> str:
    """The process group's backend (nccl / gloo), or "none" outside one."""
    return dist.get_backend() if dist.is_initialized() else "none"
