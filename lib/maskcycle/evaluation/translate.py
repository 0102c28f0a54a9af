"""Translate a folder of images with a trained generator (batched, every image, bad files named)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from maskcycle.config import TrialConfig
from maskcycle.data.images import ImageReadError, list_images, read_rgb, to_tensor, to_uint8, write_png
from maskcycle.models import checkpoints
from maskcycle.models.cyclegan import translate_batch


@dataclasses.dataclass
class TranslateReport:
    written: list[Path]
    failed: list[tuple[Path, str]]  # (file, reason)


def load_generator(checkpoint: str | Path, direction: str, device: torch.device | str = "cpu",
                   reference_cfg: TrialConfig | None = None) -> tuple[TrialConfig, nn.Module]:
    """The generator for direction "AB" (put a mask on) or "BA" (take it off).

    Our checkpoints hold both. A reference checkpoint (`*_net_G_A.pth` = AB, `*_net_G_B.pth` = BA)
    needs `reference_cfg` for the architecture (default: the reference defaults)."""
    if direction not in ("AB", "BA"):
        raise ValueError(f"direction must be 'AB' or 'BA', got {direction!r}")
    name = Path(checkpoint).name
    if name.endswith(("_net_G_A.pth", "_net_G_B.pth")):
        want = "A" if direction == "AB" else "B"
        if not name.endswith(f"_net_G_{want}.pth"):
            raise ValueError(f"{checkpoint}: a reference G_{name[-5]} checkpoint cannot translate {direction} "
                             f"(reference G_A maps A->B, G_B maps B->A)")
        cfg = reference_cfg or TrialConfig()
        return cfg, checkpoints.load_reference_generator(checkpoint, cfg, device)
    cfg, G_AB, G_BA = checkpoints.load_generators(checkpoint, device)
    G = G_AB if direction == "AB" else G_BA
    if G is None:
        raise ValueError(f"{checkpoint}: a {cfg.model} trial that learned {cfg.direction} only; "
                         f"it cannot translate {direction}")
    return cfg, G


def translate_folder(G: nn.Module, cfg: TrialConfig, input_dir: str | Path, output_dir: str | Path,
                     size: int | None = None, batch_size: int = 8, progress: bool = True) -> TranslateReport:
    """Translate every image in input_dir (resized to `size`, default crop_size) into PNGs of the
    same stem in output_dir. Unreadable files are skipped and reported."""
    import tqdm

    size = size or cfg.crop_size
    files = list_images(input_dir)
    out_dir = Path(output_dir)
    report = TranslateReport([], [])
    for start in tqdm.trange(0, len(files), batch_size, disable=not progress, desc="translate"):
        batch, names = [], []
        for path in files[start:start + batch_size]:
            try:
                batch.append(read_rgb(path, size))
                names.append(path)
            except ImageReadError as exc:
                report.failed.append((path, str(exc)))
        if not batch:
            continue
        fakes = translate_array(G, np.stack(batch), cfg, batch_size)
        for path, fake in zip(names, fakes):
            target = out_dir / f"{path.stem}.png"
            write_png(target, fake)
            report.written.append(target)
    return report


def translate_array(G: nn.Module, images: np.ndarray, cfg: TrialConfig, batch_size: int = 16,
                    progress: bool = False, desc: str = "translate") -> np.ndarray:
    """G applied to NxHxWx3 uint8 images in batches -> NxHxWx3 uint8."""
    import tqdm

    device = next(G.parameters()).device
    out = []
    for start in tqdm.trange(0, len(images), batch_size, disable=not progress, desc=desc, leave=False):
        x = to_tensor(np.array(images[start:start + batch_size])).to(device)  # a writable copy of a memmap
        out.append(to_uint8(translate_batch(G, x, cfg)))
    return np.concatenate(out)
