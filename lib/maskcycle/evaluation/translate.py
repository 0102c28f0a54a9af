"""Translate images with a trained generator: arrays (batched), aligned crops, and real photos
(faces found, FFHQ-aligned at the model's size, translated and pasted back; see `translate_files`)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
import tqdm
from torch import nn

from maskcycle.config import ConfigError, TrialConfig, at_least, resolve_device, size_multiple
from maskcycle.data import faces as facelib
from maskcycle.data.images import (
    ImageReadError,
    decode_photo,
    list_inputs,
    none_readable,
    to_tensor,
    to_uint8,
    write_image,
)
from maskcycle.io import check_output, check_writable
from maskcycle.models import checkpoints, execution
from maskcycle.models.runtime import translate_batch


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
        cfg = execution.resolve(reference_cfg or TrialConfig(), device).cfg
        return cfg, checkpoints.load_reference_generator(checkpoint, cfg, device)
    cfg, G_AB, G_BA = checkpoints.load_generators(checkpoint, device)
    G = G_AB if direction == "AB" else G_BA
    if G is None:
        raise ValueError(f"{checkpoint}: a {cfg.model} trial that learned {cfg.direction} only; "
                         f"it cannot translate {direction}")
    return cfg, G


# translate_array's first batch when asked for "the largest that fits" (batch_size 0 or None):
# on CUDA it halves on out-of-memory from here; on CPU larger batches gain little and cost memory
AUTO_BATCH = {"cuda": 128, "cpu": 16}


def translate_array(G: nn.Module, images: np.ndarray, cfg: TrialConfig, batch_size: int | None = 16,
                    progress: bool = False, desc: str = "translate") -> np.ndarray:
    """G applied to NxHxWx3 uint8 images in batches -> NxHxWx3 uint8, in the trial's precision and
    layout. batch_size 0 or None: the largest that fits (AUTO_BATCH); a batch that runs out of
    CUDA memory is retried at half the size, whatever was asked."""
    device = next(G.parameters()).device
    batch_size = batch_size or AUTO_BATCH.get(device.type, 16)
    out, start = [], 0
    with tqdm.tqdm(total=len(images), disable=not progress, desc=desc, leave=False) as bar:
        while start < len(images):
            x = to_tensor(np.array(images[start:start + batch_size])).to(device)  # a writable copy of a memmap
            try:
                y = translate_batch(G, x, cfg)
            except torch.cuda.OutOfMemoryError:
                if batch_size == 1:
                    raise
                del x
                torch.cuda.empty_cache()
                batch_size //= 2
                continue
            out.append(to_uint8(y))
            start += len(y)
            bar.update(len(y))
    return np.concatenate(out)


@dataclasses.dataclass
class FileResult:
    path: Path
    status: str  # "written", "no face", "unreadable", "failed"
    n_faces: int = 0
    detail: str = ""
    output: Path | None = None


@dataclasses.dataclass
class TranslateReport:
    results: list[FileResult]

    @property
    def written(self) -> list[Path]:
        return [r.output for r in self.results if r.status == "written"]

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status != "written"]

    def lines(self) -> list[str]:
        """One line per file: path, faces found, what happened."""
        out = []
        for r in self.results:
            faces = f"{r.n_faces} face(s), " if r.status in ("written", "no face") else ""
            out.append(f"{r.path}: {faces}{r.status}" + (f" ({r.detail})" if r.detail else ""))
        return out


def check_size(cfg: TrialConfig, size: int | None) -> int:
    """The side faces are translated at: `size` if the generator can take it, else an error (never
    rounded); default the model's crop_size."""
    if size is None:
        return cfg.crop_size
    m = size_multiple(cfg.netG)
    if size < m or size % m:
        raise ConfigError(f"--size {size}: {cfg.netG} takes only multiples of {m} (e.g. {max(m, size // m * m)} "
                          f"or {(size // m + 1) * m}); the model was trained at {cfg.crop_size}")
    return size


def translate_photo(G: nn.Module, cfg: TrialConfig, photo: np.ndarray, size: int, which: str = "all",
                    detector: str = "hog") -> tuple[np.ndarray | None, int]:
    """(photo with every face translated and pasted back, faces found); None when there is no face.
    `which` = "all" or "largest" (`faces.main_face`: the largest, by score among near-equal sizes)."""
    found = facelib.detect(photo, detector)
    if not found:
        return None, 0
    chosen = found if which == "all" else [facelib.main_face(found)]
    crops = [facelib.align(photo, facelib.landmarks(photo, f), size) for f in chosen]
    fakes = translate_array(G, np.stack([c.image for c in crops]), cfg)
    out = photo
    for crop, fake in zip(crops, fakes):
        out = facelib.paste_back(out, fake, crop.to_aligned)
    return out, len(found)


def _translate_one(G, cfg, path: Path, target: Path, size: int, aligned: bool, which: str,
                   detector: str) -> FileResult:
    try:
        photo = decode_photo(path)
    except ImageReadError as exc:
        return FileResult(path, "unreadable", detail=str(exc))
    image = photo.rgb
    if aligned:
        from PIL import Image

        square = np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))
        fake = translate_array(G, square[None], cfg)[0]
        out, n = np.asarray(Image.fromarray(fake).resize(image.shape[1::-1], Image.BICUBIC)), 1
    else:
        out, n = translate_photo(G, cfg, image, size, which, detector)
        if out is None:
            return FileResult(path, "no face", 0, f"{detector} detector found none; nothing written")
    notes = write_image(target, out, photo.alpha, photo.icc)  # pixels away from faces, alpha and profile kept
    return FileResult(path, "written", n, "; ".join(photo.notes + notes), output=target)


def translate_files(G: nn.Module, cfg: TrialConfig, inputs: list[str | Path], output_dir: str | Path,
                    size: int | None = None, aligned: bool = False, which: str = "all", detector: str = "hog",
                    progress: bool = True) -> TranslateReport:
    """Translate image files and folders into `output_dir`, each written under its own name at its
    own size. Photo mode (default): every face (or the largest) is FFHQ-aligned at `size` (default
    the model's crop_size), translated and pasted back. `aligned`: the inputs are aligned crops,
    translated whole. A file without a face or that cannot be read is reported, not written."""
    if which not in ("all", "largest"):
        raise ConfigError(f"--faces must be 'all' or 'largest', got {which!r}")
    size = check_size(cfg, size)
    out_dir = check_output(output_dir, [("--input", inputs)], "--output")
    results, seen = [], {}
    for path in tqdm.tqdm(list_inputs(inputs, "--input"), disable=not progress, desc="translate", unit="file"):
        if path.name in seen:
            results.append(FileResult(path, "failed", detail=f"same name as {seen[path.name]}; not written"))
            continue
        seen[path.name] = path
        try:
            results.append(_translate_one(G, cfg, path, out_dir / path.name, size, aligned, which, detector))
        except (OSError, ValueError) as exc:  # e.g. an unwritable output, an odd suffix
            results.append(FileResult(path, "failed", detail=str(exc)))
    return TranslateReport(results)


def add_arguments(p) -> None:
    """`maskcycle translate` flags (argparse only)."""
    p.add_argument("--checkpoint", required=True, help="our .pt, or the reference's *_net_G_A/B.pth")
    p.add_argument("--direction", required=True, choices=["AB", "BA"], help="AB puts a mask on, BA takes it off")
    p.add_argument("--input", required=True, nargs="+", metavar="FILE_OR_DIR", help="images and/or folders of images")
    p.add_argument("--output", required=True, help="folder for the results (same names and sizes as the inputs)")
    p.add_argument("--aligned", action="store_true", help="inputs are aligned face crops: translate them whole")
    p.add_argument("--faces", default="all", choices=["all", "largest"], help="photo mode: which faces to translate")
    p.add_argument("--detector", default="hog", choices=list(facelib.DETECTORS),
                   help="photo mode: dlib HOG (fast) or CNN (slow on CPU, better on masked faces)")
    p.add_argument("--size", type=at_least(1), default=None, help="translate faces at this side (default: the model's "
                   "crop_size; refused when the generator cannot take it)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run_command(args) -> int:
    """Run `maskcycle translate`: one report line per file; exit 1 when any file was not written."""
    check_output(args.output, [("--input", args.input), ("--checkpoint", args.checkpoint)], "--output")
    cfg, G = load_generator(args.checkpoint, args.direction, resolve_device(args.device))
    check_writable(args.output)  # a read-only place fails here, not after the face work
    report = translate_files(G, cfg, args.input, args.output, size=args.size, aligned=args.aligned,
                             which=args.faces, detector=args.detector)
    for line, r in zip(report.lines(), report.results):
        print(line, file=sys.stderr if r.status != "written" else sys.stdout)
    print(f"wrote {len(report.written)} of {len(report.results)} images to {args.output}")
    unreadable = [f"{r.path}: {r.detail.partition(': ')[2]}" for r in report.results if r.status == "unreadable"]
    if len(unreadable) == len(report.results):
        print(f"maskcycle translate: error: nothing done: {none_readable(unreadable)}", file=sys.stderr)
    return 1 if report.failed else 0
