"""Paired training batches for pix2pix: the curated pair list, with the same crop and flip for
both images of a pair (the reference's aligned data set shares its transform between A and B).

Curation (maskcycle.data.curate) writes `pairs_train.csv` (id, file, source_A, source_B) and the
pair images `pairs_trainA/<id>.png`, `pairs_trainB/<id>.png` at load_size: ids present in both raw
sets whose images both passed the filters, identity-disjoint from every test id. Only the FFHQ +
MaskedFace-Net readers know identities; a folder curated without them has no pair list, and
pix2pix then stops with an error that names the missing file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from maskcycle.config import TrialConfig
from maskcycle.data import pair_files
from maskcycle.data.cache import cached_images
from maskcycle.data.images import list_images
from maskcycle.data.unpaired import EpochPlan, UnpairedData, _limit, image_size

PAIR_FOLDERS = ("pairs_trainA", "pairs_trainB")


class NoPairsError(FileNotFoundError):
    """A paired model was asked to train on a folder without a training pair list."""


class PairedData(UnpairedData):
    """The training pairs as two aligned uint8 arrays (A[i] and B[i] show one face) and the
    batches of each epoch. Same interface as UnpairedData (plan / batch / n_batches)."""

    def __init__(self, root: str | Path, cfg: TrialConfig, split: str = "train"):
        self.cfg = cfg
        root = Path(root)
        listing = pair_files.pairs_path(root, "train")
        if not listing.is_file() or not all((root / f).is_dir() for f in PAIR_FOLDERS):
            raise NoPairsError(
                f"{listing}: no training pair list ({listing.name} with {PAIR_FOLDERS[0]}/, {PAIR_FOLDERS[1]}/); "
                f"model {cfg.model!r} trains on pairs. Curate from the raw FFHQ and MaskedFace-Net sets "
                "(`maskcycle curate --ffhq ... --maskedfacenet ...`), which know identities; an unpaired "
                "curated folder has none"
            )
        with listing.open() as f:
            files = [row["file"] for row in csv.DictReader(f)]
        for folder in PAIR_FOLDERS:
            have = [p.name for p in list_images(root / folder)]
            if have != sorted(files):
                raise NoPairsError(f"{root / folder}: its images do not match {listing} (rerun the curation)")
        if not files:
            raise NoPairsError(f"{listing}: the pair list is empty")
        size = image_size(cfg)
        self.A = _limit(cached_images(root / PAIR_FOLDERS[0], size), cfg.max_dataset_size)
        self.B = _limit(cached_images(root / PAIR_FOLDERS[1], size), cfg.max_dataset_size)

    def __len__(self) -> int:
        return len(self.A)

    def plan(self, epoch: int) -> EpochPlan:
        """Pair order (shuffled unless serial_batches), one crop and one flip per pair, drawn from
        a generator seeded by (seed, epoch)."""
        cfg = self.cfg
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        n = len(self)
        order = torch.arange(n) if cfg.serial_batches else torch.randperm(n, generator=g)
        room = self.A.shape[1] - cfg.crop_size
        crops = torch.randint(0, room + 1, (n, 2), generator=g)
        flips = torch.rand(n, generator=g) < 0.5
        if cfg.no_flip:
            flips[:] = False
        return EpochPlan(order, order.clone(), crops, crops.clone(), flips, flips.clone())
