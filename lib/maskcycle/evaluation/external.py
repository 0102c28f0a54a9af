"""Score folders of fakes made elsewhere (no checkpoints) with the evaluation's metrics.

    maskcycle evaluate --fakes-ab DIR --real-b DIR [--real-a DIR] [--fakes-ba DIR ...] --out DIR
                       [--pairs-ab CSV] [--pairs-ba CSV]

fd_face_AB / kd_face_AB = D(fakes A->B, real B) and the BA pair likewise, always (offline);
fid_AB / kid_AB when the Inception weights exist (every image resized to the first fake's size).
A pairs CSV (columns fake,real: a fake's file and the photo it must still look like; paths absolute,
relative to the CSV's folder, or a fake's bare name in its fakes folder) adds id_rate / id_dist.
Writes `<out>/metrics.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from maskcycle.data.images import ImageReadError, list_images, read_rgb
from maskcycle.evaluation import fid_protocol
from maskcycle.io import atomic_write_text, check_output, read_pairs, resolved, utc_now
from maskcycle.settings import ConfigError

REAL_OF = {"AB": "B", "BA": "A"}  # fakes of a direction are compared with real images of this domain


def _read_folder(folder: Path, flag: str) -> tuple[list[Path], list[np.ndarray], list[str]]:
    files, images, skipped = [], [], []
    for path in list_images(folder):
        try:
            images.append(read_rgb(path))
            files.append(path)
        except ImageReadError as exc:
            skipped.append(str(exc))
    if len(images) < 2:
        raise ConfigError(f"{flag} {folder}: needs at least 2 readable images, found {len(images)}")
    return files, images, skipped


def _resolve(value: str, csv_path: Path, fakes_dir: Path | None) -> Path | None:
    """A pairs CSV's path: absolute, or relative to the CSV's folder; a fake's bare name is looked up
    in its fakes folder first (a CSV kept among the real photos names them the same way)."""
    path = Path(value)
    if path.is_absolute():
        candidates = [path]
    elif fakes_dir is not None and len(path.parts) == 1:
        candidates = [fakes_dir / path, csv_path.parent / path]
    else:
        candidates = [csv_path.parent / path] + ([fakes_dir / path.name] if fakes_dir is not None else [])
    return next((p.resolve() for p in candidates if p.is_file()), None)


def read_pair_csv(path: str | Path, fakes_dir: Path) -> list[tuple[Path, Path]]:
    """(fake, real) files of a pairs CSV, checked by io.read_pairs (a missing file names the line;
    a fake listed twice, or a "fake" that is its own real, is refused)."""
    path = Path(path)

    def resolve(column: str, value: str, row) -> Path:
        found = _resolve(value, path, fakes_dir if column == "fake" else None)
        if found is None:
            where = f"{fakes_dir} or {path.parent}" if column == "fake" and len(Path(value).parts) == 1 else path.parent
            raise ConfigError(f"{path} line {row.line}: {column} file {value!r} not found (looked in {where})")
        return found

    return [(fake, real) for _, fake, real in read_pairs(path, ("fake", "real"), resolve, ConfigError)]


def _read(path: Path) -> np.ndarray:
    try:
        return read_rgb(path)
    except ImageReadError as exc:
        raise ConfigError(f"pairs: {exc}") from None


def _fid(scorer, fakes: list[np.ndarray], reals: list[np.ndarray], real_key: str,
         real_format: dict | None = None) -> dict:
    from PIL import Image

    h, w = fakes[0].shape[:2]

    def same_size(images):
        return np.stack([im if im.shape[:2] == (h, w) else np.asarray(Image.fromarray(im).resize((w, h), Image.BICUBIC))
                         for im in images])

    return scorer.score(same_size(fakes), ("external", real_key, h, w), same_size(reals), real_format)


def check_paths(out_dir, fakes: dict, real: dict, pairs: dict) -> None:
    """Before any work: the output rule (`io.check_output`) and distinct fakes and real folders."""
    flags = {**{f"--fakes-{d.lower()}": fakes.get(d) for d in ("AB", "BA")},
             **{f"--real-{d.lower()}": real.get(d) for d in ("A", "B")},
             **{f"--pairs-{d.lower()}": (pairs or {}).get(d) for d in ("AB", "BA")}}
    check_output(out_dir, list(flags.items()))
    check_distinct({k: v for k, v in flags.items() if not k.startswith("--pairs")})


def check_distinct(folders: dict[str, str | Path | None]) -> None:
    """Fakes and reals must be different folders: one folder given twice scores images against
    themselves (a perfect FID, identity rate 1.0)."""
    seen: dict[Path, str] = {}
    for flag, folder in folders.items():
        if folder:
            where = resolved(folder, flag)
            if where in seen:
                raise ConfigError(f"{flag} {folder} is the same folder as {seen[where]}: fakes would be scored "
                                  "against themselves; give the fakes and the real images in separate folders")
            seen[where] = f"{flag} {folder}"


def evaluate_fakes(out_dir: str | Path, fakes: dict[str, str | Path | None], real: dict[str, str | Path | None],
                   pairs: dict[str, str | Path | None] | None = None, scorer=None, progress: bool = True) -> dict:
    """Score `fakes` {"AB": dir, "BA": dir} against `real` {"A": dir, "B": dir}; write metrics.json."""
    from maskcycle.evaluation import facedist  # torch: not needed for `maskcycle --help`

    pairs = pairs or {}
    check_paths(out_dir, fakes, real, pairs)
    given = [d for d in ("AB", "BA") if fakes.get(d)]
    if not given:
        raise ConfigError("give --fakes-ab DIR and/or --fakes-ba DIR")
    for d in ("AB", "BA"):
        if pairs.get(d) and d not in given:
            raise ConfigError(f"--pairs-{d.lower()} {pairs[d]} needs --fakes-{d.lower()} (the fakes it pairs)")
    # every pairs CSV is checked before any image is read
    pair_files = {d: read_pair_csv(pairs[d], Path(fakes[d])) for d in given if pairs.get(d)}
    record: dict = {"evaluated_at": utc_now(), "face_fallback": {}, "skipped": []}
    real_sets: dict = {}
    for d in given:
        dom = REAL_OF[d]
        if not real.get(dom):
            raise ConfigError(f"--fakes-{d.lower()} needs --real-{dom.lower()} (the real images it is compared with)")
        fake_dir = Path(fakes[d])
        fake_paths, fake_imgs, skipped = _read_folder(fake_dir, f"--fakes-{d.lower()}")
        if dom not in real_sets:
            real_sets[dom] = _read_folder(Path(real[dom]), f"--real-{dom.lower()}")
        real_paths, real_imgs, real_skipped = real_sets[dom]
        record["skipped"] += skipped + real_skipped
        f_fake, miss_fake = facedist.descriptors(fake_imgs, progress, f"faces fakes {d}")
        f_real, miss_real = facedist.descriptors(real_imgs, progress, f"faces real {dom}")
        ident = ref = None
        if d in pair_files:
            f_a, _ = facedist.descriptors([_read(f) for f, _ in pair_files[d]], progress, f"faces pairs {d}")
            f_b, _ = facedist.descriptors([_read(r) for _, r in pair_files[d]], progress, f"faces pairs {d}")
            ident, ref = facedist.identity(f_a, f_b), str(pairs[d])
        record.update(facedist.flat(d, facedist.distribution_distances(f_fake, f_real), ident, ref))
        record["face_fallback"].update({f"fakes_{d}": miss_fake, f"real_{dom}": miss_real})
        record.update({f"n_fakes_{d}": len(fake_imgs), f"n_real_{dom}": len(real_imgs)})
        if scorer is not None and scorer.extractor is not None:
            # the fakes are put in the real set's format (JPEG at its quality when it is JPEG)
            scores = _fid(scorer, fake_imgs, real_imgs, str(real[dom]), fid_protocol.file_format(real_paths))
            scores["protocol"]["fake"]["files"] = fid_protocol.file_format(fake_paths)["format"]
            record.update({f"fid_{d}": scores["FID"], f"kid_{d}": scores["KID"], f"kid_{d}_std": scores["KID_std"],
                           f"fid_protocol_{d}": scores["protocol"]})
    record["fid_unavailable_reason"] = None if scorer is None else scorer.unavailable
    path = Path(out_dir) / "metrics.json"
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return record


def add_arguments(p) -> None:
    """The external-fakes flags of `maskcycle evaluate` (argparse only)."""
    p.add_argument("--fakes-ab", help="external fakes A->B (masks put on): score them without a checkpoint")
    p.add_argument("--fakes-ba", help="external fakes B->A (masks taken off)")
    p.add_argument("--real-a", help="real unmasked images (compared with --fakes-ba)")
    p.add_argument("--real-b", help="real masked images (compared with --fakes-ab)")
    p.add_argument("--pairs-ab", help="CSV fake,real: each A->B fake and the photo it must still look like")
    p.add_argument("--pairs-ba", help="CSV fake,real for the B->A fakes (e.g. the true unmasked face)")
