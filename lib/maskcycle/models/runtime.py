"""What every model family's step uses: precision (autocast), memory layout, network placement
(channels_last with the batch-1 InstanceNorm fix, torch.compile), freezing networks, inference,
and the random streams (the one table of their seed offsets).

A family module (models/families.py) builds its networks with `prepare_network`, runs its passes
under `autocast`, feeds them `to_layout(batch)`, freezes a discriminator with `set_requires_grad`,
and seeds each of its generators with `stream_seed(cfg.seed, "<stream>")`.
"""

from __future__ import annotations

import contextlib
import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from maskcycle.config import TrialConfig
from maskcycle.models.execution import require_resolved

# Seed offsets of every random stream of a trial (seed + offset on rank 0 / a single process).
# One table, so two streams never share a seed; a new family adds its streams here.
STREAMS = {
    "global": 0,  # torch's global RNG under DDP (dropout drawn outside a family's own state)
    "pool_A": 1,  # CycleGAN's pool of fake A; pix2pix's pool of fake pairs
    "pool_B": 2,  # CycleGAN's pool of fake B
    "gp": 3,  # CycleGAN's gradient-penalty interpolation
    "nce_head": 4,  # CUT's MLP head initialisation
    "nce_patches": 5,  # CUT's patch positions
    "flips": 6,  # FastCUT's flips
    "dropout": 7,  # pix2pix's generator dropout
}


def stream_seed(seed: int, stream: str, rank: int = 0) -> int:
    """Seed of random stream `stream` on `rank`: rank 0 keeps the single-process seed (seed +
    offset), other ranks get distinct seeds derived from (seed, rank, offset)."""
    offset = STREAMS[stream]
    if rank == 0:
        return seed + offset
    digest = hashlib.sha256(f"maskcycle:{seed}:{rank}:{offset}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def stream(seed: int, name: str, rank: int = 0) -> torch.Generator:
    """A CPU generator seeded for stream `name` on `rank`."""
    return torch.Generator().manual_seed(stream_seed(seed, name, rank))


def is_plain(cfg: TrialConfig) -> bool:
    """The plain path: fp32, contiguous, eager, separate passes. It is the exactness reference;
    any fast switch (precision bf16, channels_last, compile, batched_passes) also takes the
    fused optimiser."""
    require_resolved(cfg)
    return cfg.precision == "fp32" and not cfg.channels_last and not cfg.compile and not cfg.batched_passes


def fused_default(cfg: TrialConfig, fused: bool | None) -> bool:
    """`fused` as given, else on unless the path is plain."""
    return not is_plain(cfg) if fused is None else fused


def autocast(cfg: TrialConfig, device: torch.device | str):
    """bf16 autocast (CPU and CUDA) when asked for; fp32 (no autocast) is the exactness reference."""
    require_resolved(cfg)
    if cfg.precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class InstanceNormChannelsLastSafe(nn.Module):
    """InstanceNorm2d(affine=False, track_running_stats=False) that stays right with channels_last.

    torch 2.14.1's CPU instance_norm returns a wrong *input gradient* when the batch size is 1 and
    the incoming gradient is channels_last (pytorch/pytorch#111824; the forward looks fine). At
    batch size 1 instance norm is batch norm with batch statistics, whose channels_last kernels
    are right, so that is used there. No parameters or buffers: state dicts are unchanged."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:
            return F.batch_norm(x, None, None, training=True, momentum=0.0, eps=self.eps)
        return F.instance_norm(x, eps=self.eps)


def _swap_instance_norms(net: nn.Module) -> None:
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.InstanceNorm2d) and not child.affine and not child.track_running_stats:
                setattr(parent, name, InstanceNormChannelsLastSafe(child.eps))


def prepare_network(net: nn.Module, cfg: TrialConfig, device: torch.device | str = "cpu") -> nn.Module:
    """Move a network to `device` in the layout the trial asks for: channels_last (with the
    batch-1 instance-norm fix) and `torch.compile` (in place, so state-dict keys stay plain).
    Mode "reduce-overhead" records CUDA graphs, one per call site and shape (the batched step
    has static shapes: 2n, 3n and n per generator; a short last batch records once more)."""
    require_resolved(cfg)
    net = net.to(device)
    if cfg.channels_last:
        _swap_instance_norms(net)
        net = net.to(memory_format=torch.channels_last)
    if cfg.compile:
        net.compile(mode=cfg.compile_mode)
    return net


def to_layout(x: torch.Tensor, cfg: TrialConfig) -> torch.Tensor:
    """A batch in the memory layout the networks use."""
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last is True else x


def configure_backends(cfg: TrialConfig, device: torch.device | str) -> None:
    """cudnn autotuning on the fast CUDA path only: its algorithm choice may vary between runs,
    and fp32 stays the bit-exact reference."""
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = cfg.precision != "fp32"


def set_requires_grad(nets, flag: bool) -> None:
    """Freeze (False) or unfreeze the parameters of `nets` (e.g. D while G steps)."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


@torch.no_grad()
def translate_batch(G: nn.Module, images: torch.Tensor, cfg: TrialConfig | None = None) -> torch.Tensor:
    """G(images) in eval mode (batch norm uses running stats), restoring the mode after."""
    was_training = G.training
    G.eval()
    try:
        ctx = autocast(cfg, images.device) if cfg is not None else contextlib.nullcontext()
        with ctx:
            out = G(to_layout(images, cfg) if cfg is not None else images)
        return out.float().contiguous()
    finally:
        G.train(was_training)
