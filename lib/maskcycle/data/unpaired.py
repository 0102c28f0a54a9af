"""Unpaired training batches with the reference sampling, drawn reproducibly per epoch.

Reference behaviour kept: epoch length max(|A|, |B|); A at index % |A|; B at random per item
(index % |B| with serial_batches); shuffled order unless serial_batches; no drop_last;
resize_and_crop = resize to load_size (done once, in the cache), random crop to crop_size,
random horizontal flip unless no_flip; values in [-1, 1].

Where we differ, on purpose: every random draw of an epoch comes from one generator seeded by
(seed, epoch) in the main process, instead of Python's global RNG in loader workers. So an epoch's
batches are a pure function of the seed and the epoch: runs repeat exactly and a resumed run
continues mid-epoch by skipping the batches already done.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from maskcycle.config import TrialConfig
from maskcycle.data.cache import cached_images
from maskcycle.data.images import to_tensor, to_unit_range


@dataclasses.dataclass
class EpochPlan:
    """Which images, crops and flips every item of one epoch uses."""

    idx_A: torch.Tensor
    idx_B: torch.Tensor
    crop_A: torch.Tensor  # N x 2 (top, left)
    crop_B: torch.Tensor
    flip_A: torch.Tensor  # N bool
    flip_B: torch.Tensor

    def __len__(self) -> int:
        return len(self.idx_A)


def image_size(cfg: TrialConfig) -> int:
    """The stored (cached) size: load_size for resize_and_crop, crop_size for resize (no crop)."""
    return cfg.load_size if cfg.preprocess == "resize_and_crop" else cfg.crop_size


class UnpairedData:
    """Both domains of one split as uint8 arrays, and the batches of each epoch."""

    def __init__(self, root: str | Path, cfg: TrialConfig, split: str = "train"):
        self.cfg = cfg
        root = Path(root)
        size = image_size(cfg)
        self.A = _limit(cached_images(root / f"{split}A", size), cfg.max_dataset_size)
        self.B = _limit(cached_images(root / f"{split}B", size), cfg.max_dataset_size)

    def __len__(self) -> int:
        return max(len(self.A), len(self.B))

    def n_batches(self) -> int:
        return -(-len(self) // self.cfg.batch_size)

    def plan(self, epoch: int) -> EpochPlan:
        cfg = self.cfg
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        n, nA, nB = len(self), len(self.A), len(self.B)
        order = torch.arange(n) if cfg.serial_batches else torch.randperm(n, generator=g)
        idx_A = order % nA
        idx_B = order % nB if cfg.serial_batches else torch.randint(0, nB, (n,), generator=g)
        room = self.A.shape[1] - cfg.crop_size
        crops = torch.randint(0, room + 1, (4, n), generator=g)
        flips = torch.rand(2, n, generator=g) < 0.5
        if cfg.no_flip:
            flips[:] = False
        return EpochPlan(idx_A, idx_B, crops[:2].T, crops[2:].T, flips[0], flips[1])

    def batch(self, plan: EpochPlan, b: int, device: torch.device | str = "cpu"):
        """Batch b of an epoch as two float tensors in [-1, 1] on `device`."""
        sl = slice(b * self.cfg.batch_size, (b + 1) * self.cfg.batch_size)
        return (
            self._assemble(self.A, plan.idx_A[sl], plan.crop_A[sl], plan.flip_A[sl], device),
            self._assemble(self.B, plan.idx_B[sl], plan.crop_B[sl], plan.flip_B[sl], device),
        )

    def _assemble(self, images, idx, crops, flips, device) -> torch.Tensor:
        # One gather of whole uint8 images on the host, one (pinned, non-blocking) copy, then
        # crop, flip and normalise as tensor ops on the device: the GPU does the pixel work and
        # the host never waits for it. The values equal a host-side crop exactly (uint8 slices).
        device = torch.device(device)
        c = self.cfg.crop_size
        whole = torch.from_numpy(np.ascontiguousarray(images[np.asarray(idx)]))
        if device.type == "cuda":
            whole = whole.pin_memory()
        whole = whole.to(device, non_blocking=True)
        patches = []
        for k, ((top, left), flip) in enumerate(zip(crops.tolist(), flips.tolist())):
            patch = whole[k, top:top + c, left:left + c]
            patches.append(patch.flip(1) if flip else patch)
        return to_unit_range(torch.stack(patches).permute(0, 3, 1, 2)).contiguous()


def _limit(images: np.ndarray, max_size: int) -> np.ndarray:
    return images[:max_size] if max_size else images


def fixed_samples(root: str | Path, cfg: TrialConfig, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n images of each domain (test split if present, else train), centre-cropped:
    the same images in every epoch's sample grid."""
    root = Path(root)
    split = "test" if (root / "testA").is_dir() and (root / "testB").is_dir() else "train"
    size, c = image_size(cfg), cfg.crop_size
    out = []
    for domain in "AB":
        images = cached_images(root / f"{split}{domain}", size)[:n]
        o = (size - c) // 2
        out.append(to_tensor(images[:, o:o + c, o:o + c]))
    return out[0], out[1]
