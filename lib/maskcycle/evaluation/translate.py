"""Translate images with a trained generator or a non-learned family (template, inpaint,
do_nothing: no checkpoint): arrays (batched), aligned crops, and real photos (faces found,
FFHQ-aligned at the model's size, translated and pasted back; see `translate_files`). With
`composite: mask` a learned model's output is kept only in the face's mask / lower-face region."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
import tqdm
from torch import nn

from maskcycle.config import TrialConfig, non_learned, size_multiple
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
from maskcycle.devices import resolve_device
from maskcycle.evaluation import baselines
from maskcycle.io import check_output, check_writable
from maskcycle.models import checkpoints, execution
from maskcycle.models.runtime import translate_batch
from maskcycle.params import parse_overrides
from maskcycle.settings import ConfigError, at_least


def is_reference(checkpoint: str | Path) -> bool:
    """A generator saved by the reference implementation (by its name: `*_net_G_A.pth`, `*_net_G_B.pth`)."""
    return Path(checkpoint).name.endswith(("_net_G_A.pth", "_net_G_B.pth"))


def load_generator(checkpoint: str | Path, direction: str, device: torch.device | str = "cpu",
                   reference_cfg: TrialConfig | None = None) -> tuple[TrialConfig, nn.Module]:
    """The generator for direction "AB" (put a mask on) or "BA" (take it off).

    Our checkpoints hold both. A reference checkpoint (`*_net_G_A.pth` = AB, `*_net_G_B.pth` = BA)
    needs `reference_cfg` for the architecture (default: the reference defaults)."""
    if direction not in ("AB", "BA"):
        raise ValueError(f"direction must be 'AB' or 'BA', got {direction!r}")
    name = Path(checkpoint).name
    if is_reference(checkpoint):
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
    cfg = execution.resolve(cfg, device).cfg  # a trial's config.yaml keeps "auto": this device decides
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


def translate_crops(G: nn.Module | None, cfg: TrialConfig, direction: str, crops: np.ndarray,
                    lms: list | None = None, notes: list | None = None, batch_size: int | None = 16,
                    progress: bool = False, desc: str = "translate", check_masked: bool = True) -> baselines.Crops:
    """Aligned crops through the trial's family in `direction`: a generator G (then composited when
    `cfg.composite` is mask) or, for a non-learned family (G None), its image operation. `lms`: the
    crops' 68 landmarks when known (photo mode), else found on the crops where needed;
    `check_masked` False where every input is known to wear a mask (`baselines.non_learned`)."""
    if not cfg.learned:
        return baselines.non_learned(cfg, direction, crops, lms, notes, check_masked)
    fakes = translate_array(G, crops, cfg, batch_size, progress, desc)
    if cfg.composite == "mask":
        return baselines.composite(cfg, direction, np.asarray(crops), fakes, lms)
    return baselines.Crops(fakes, [None] * len(fakes), [None] * len(fakes))


@dataclasses.dataclass
class FileResult:
    path: Path
    status: str  # "written", "no face", "not translated" (no face could take it), "unreadable", "failed"
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
            faces = f"{r.n_faces} face(s), " if r.status in ("written", "no face", "not translated") else ""
            detail = r.detail.removeprefix(f"{r.path}: ") if r.detail else ""  # read errors name the file too
            out.append(f"{r.path}: {faces}{r.status}" + (f" ({detail})" if detail else ""))
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


def translate_photo(G: nn.Module | None, cfg: TrialConfig, photo: np.ndarray, size: int, which: str = "all",
                    detector: str = "hog", direction: str = "AB") -> tuple[np.ndarray | None, int, list[str]]:
    """(photo with every face translated and pasted back, faces found, why faces were left as they
    were); None when there is no face. `which` = "all" or "largest" (`faces.main_face`: the largest,
    by score among near-equal sizes). Non-learned families and compositing paste back only the
    pixels they changed; a face the template cannot fit (too small, too turned, cut off) is left."""
    found = facelib.detect(photo, detector)
    if not found:
        return None, 0, []
    chosen = found if which == "all" else [facelib.main_face(found)]
    lms = [facelib.landmarks(photo, f) for f in chosen]
    crops = [facelib.align(photo, lm, size) for lm in lms]
    crop_lms = [facelib.photo_to_crop(lm, c.to_aligned) for lm, c in zip(lms, crops)]
    notes = [baselines.photo_problem(cfg, lm, photo.shape) for lm in lms]
    done = translate_crops(G, cfg, direction, np.stack([c.image for c in crops]), crop_lms, notes)
    out, left = photo, []
    for face, crop, fake, changed, note in zip(chosen, crops, done.images, done.changed, done.notes):
        if note:
            left.append(f"face at x={face.box[0]}, y={face.box[1]}: {note}; left as it was")
            continue
        out = facelib.paste_back(out, fake, crop.to_aligned, alpha=changed)
    return out, len(found), left


def _translate_one(G, cfg, path: Path, target: Path, size: int, aligned: bool, which: str,
                   detector: str, direction: str = "AB") -> FileResult:
    try:
        photo = decode_photo(path)
    except ImageReadError as exc:
        return FileResult(path, "unreadable", detail=str(exc))
    image = photo.rgb
    if aligned:
        from PIL import Image

        square = np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))
        done = translate_crops(G, cfg, direction, square[None])
        if done.notes[0]:
            return FileResult(path, "not translated", 1, f"{done.notes[0]}; nothing written")
        out, n, left = np.asarray(Image.fromarray(done.images[0]).resize(image.shape[1::-1], Image.BICUBIC)), 1, []
    else:
        out, n, left = translate_photo(G, cfg, image, size, which, detector, direction)
        if out is None:
            return FileResult(path, "no face", 0, f"{detector} detector found none; nothing written")
        chosen = n if which == "all" else 1
        if len(left) == chosen:
            return FileResult(path, "not translated", n, "; ".join(left) + "; nothing written")
    notes = write_image(target, out, photo.alpha, photo.icc)  # pixels away from faces, alpha and profile kept
    return FileResult(path, "written", n, "; ".join(left + photo.notes + notes), output=target)


def translate_files(G: nn.Module | None, cfg: TrialConfig, inputs: list[str | Path], output_dir: str | Path,
                    size: int | None = None, aligned: bool = False, which: str = "all", detector: str = "hog",
                    progress: bool = True, direction: str = "AB") -> TranslateReport:
    """Translate image files and folders into `output_dir`, each written under its own name at its
    own size. Photo mode (default): every face (or the largest) is FFHQ-aligned at `size` (default
    the model's crop_size), translated and pasted back. `aligned`: the inputs are aligned crops,
    translated whole. A file without a face or that cannot be read is reported, not written. G is
    None for a non-learned family (`cfg.model`), which translates `direction`."""
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
            results.append(_translate_one(G, cfg, path, out_dir / path.name, size, aligned, which, detector,
                                          direction))
        except (OSError, ValueError) as exc:  # e.g. an unwritable output, an odd suffix
            results.append(FileResult(path, "failed", detail=str(exc)))
    return TranslateReport(results)


def add_arguments(p) -> None:
    """`maskcycle translate` flags (argparse only)."""
    p.add_argument("--checkpoint", default=None, help="our .pt, or the reference's *_net_G_A/B.pth")
    p.add_argument("--model", default=None, choices=list(non_learned()),
                   help="a non-learned family instead of a checkpoint: template (AB: draws a mask on), "
                   "inpaint (BA: fills the segmented mask), do_nothing (output = input)")
    p.add_argument("--direction", required=True, choices=["AB", "BA"], help="AB puts a mask on, BA takes it off")
    p.add_argument("--input", required=True, nargs="+", metavar="FILE_OR_DIR", help="images and/or folders of images")
    p.add_argument("--output", required=True, help="folder for the results (same names and sizes as the inputs)")
    p.add_argument("--aligned", action="store_true", help="inputs are aligned face crops: translate them whole")
    p.add_argument("--faces", default="all", choices=["all", "largest"], help="photo mode: which faces to translate")
    p.add_argument("--detector", default="hog", choices=list(facelib.DETECTORS),
                   help="photo mode: dlib HOG (fast) or CNN (slow on CPU, better on masked faces)")
    p.add_argument("--size", type=at_least(1), default=None, help="translate faces at this side (default: the model's "
                   "crop_size, 256 for --model; refused when the generator cannot take it)")
    p.add_argument("--composite", default=None, choices=["none", "mask"], help="a checkpoint's output kept only in "
                   "the mask (BA) / lower face (AB) region (default: the trial's setting)")
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="--model: its settings, e.g. seed=3 template_textures=white inpaint_method=ns; a reference "
                        "*_net_G_A/B.pth: the run's settings (netG, ngf, norm, crop_size, ...)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def translator(args) -> tuple[TrialConfig, nn.Module | None]:
    """(settings, generator or None) for the command's --checkpoint or --model; a usage error
    names both when they conflict or the family cannot translate the direction."""
    if args.model and args.checkpoint:
        raise ConfigError(f"--model {args.model} has no training step and takes no --checkpoint "
                          f"({args.checkpoint}); give one of them")
    if args.model:
        if args.direction not in non_learned()[args.model]:
            raise ConfigError(f"--model {args.model} cannot translate --direction {args.direction} "
                              f"(it translates {' and '.join(non_learned()[args.model])} only)")
        if args.composite not in (None, "none"):
            raise ConfigError(f"--composite {args.composite} applies to a --checkpoint, not --model {args.model}")
        values = {"model": args.model, "direction": args.direction, **parse_overrides(args.set)}
        return TrialConfig.from_dict(values, source="--set"), None
    if not args.checkpoint:
        raise ConfigError(f"give --checkpoint (a trained model) or --model {'|'.join(non_learned())}")
    reference_cfg = None
    if args.set:
        if not is_reference(args.checkpoint):
            raise ConfigError(f"--set is for a reference checkpoint (*_net_G_A.pth / *_net_G_B.pth) or --model; "
                              f"{args.checkpoint} carries its trial's own settings")
        reference_cfg = TrialConfig().replace(**parse_overrides(args.set))
    cfg, G = load_generator(args.checkpoint, args.direction, resolve_device(args.device), reference_cfg)
    return (cfg.replace(composite=args.composite) if args.composite else cfg), G


def run_command(args) -> int:
    """Run `maskcycle translate`: one report line per file; exit 1 when any file was not written."""
    check_output(args.output, [("--input", args.input), ("--checkpoint", args.checkpoint)], "--output")
    cfg, G = translator(args)
    check_writable(args.output)  # a read-only place fails here, not after the face work
    report = translate_files(G, cfg, args.input, args.output, size=args.size, aligned=args.aligned,
                             which=args.faces, detector=args.detector, direction=args.direction)
    for line, r in zip(report.lines(), report.results):
        print(line, file=sys.stderr if r.status != "written" else sys.stdout)
    print(f"wrote {len(report.written)} of {len(report.results)} images to {args.output}")
    unreadable = [f"{r.path}: {r.detail.partition(': ')[2]}" for r in report.results if r.status == "unreadable"]
    if len(unreadable) == len(report.results):
        print(f"maskcycle translate: error: nothing done: {none_readable(unreadable)}", file=sys.stderr)
    return 1 if report.failed else 0
