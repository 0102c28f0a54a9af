"""Tables, charts and contact sheets for reviewing a curation (notebook 01 calls these)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from maskcycle.data import pair_files
from maskcycle.data.demo import contact_sheet
from maskcycle.data.images import ImageReadError, read_rgb, write_png


def load(out_dir: str | Path) -> pd.DataFrame:
    """The manifest of a curated folder."""
    return pd.read_csv(Path(out_dir) / "manifest.csv", dtype={"id": str, "reason": str, "note": str,
                                                             "out_file": str, "placement": str}).fillna(
        {"reason": "", "note": "", "out_file": "", "placement": ""})


def reason_counts(m: pd.DataFrame) -> pd.DataFrame:
    """Images per (domain, reason); an image with several reasons counts under each."""
    r = m.assign(reason=m.reason.replace("", "kept").str.split(";")).explode("reason")
    r["reason"] = r.reason.str.replace(r"^manual:.*", "manual", regex=True)
    return r.groupby(["domain", "reason"]).size().rename("images").reset_index()


def placement_counts(m: pd.DataFrame) -> pd.DataFrame:
    """Masked images per placement class, and how many of them were kept / used."""
    b = m[m.domain == "B"]
    return (b.assign(kept=b.reason == "", used=b.split.isin(["train", "val", "test"]))
            .groupby("placement").agg(images=("id", "size"), kept=("kept", "sum"), used=("used", "sum"))
            .reset_index())


def hit_rates(m: pd.DataFrame) -> pd.DataFrame:
    """The face detector on readable, measured images of each domain: share with >= 1 and == 1 face."""
    d = m[m.faces.notna() & (m.faces >= 0)]
    g = d.groupby("domain").faces
    return pd.DataFrame({"measured": g.size(), "hit_rate(>=1 face)": g.apply(lambda f: (f >= 1).mean()).round(3),
                         "exactly_one": g.apply(lambda f: (f == 1).mean()).round(3),
                         "two_or_more": g.apply(lambda f: (f >= 2).mean()).round(3)}).reset_index()


def detector_hit_rates(m: pd.DataFrame, detectors=("haar", "hog"), n: int = 24, seed: int = 0,
                       work_size: int = 256) -> pd.DataFrame:
    """Each detector on one seeded sample of kept images per domain (counted on the image itself, at
    work_size): share with >= 1 face and with exactly one, and seconds per image."""
    import time

    from maskcycle.data import faces, measures

    rng = np.random.default_rng(seed)
    rows = []
    for d in "AB":
        kept = m[(m.domain == d) & m.split.isin(["train", "val", "test"])]
        pick = kept.iloc[np.sort(rng.choice(len(kept), min(n, len(kept)), replace=False))] if len(kept) else kept
        images = [read_rgb(p, work_size) for p in pick.source_path]
        for det in detectors:
            t0 = time.perf_counter()
            if det == "haar":
                counts = [measures.count_faces(measures.gray_work(im, work_size)) for im in images]
            else:
                counts = [len(faces.detect(im, det)) for im in images]
            c = np.array(counts)
            rows.append({"domain": d, "detector": det, "images": len(c),
                         "hit_rate(>=1 face)": round(float((c >= 1).mean()), 3) if len(c) else None,
                         "exactly_one": round(float((c == 1).mean()), 3) if len(c) else None,
                         "s_per_image": round((time.perf_counter() - t0) / max(1, len(c)), 3)})
    return pd.DataFrame(rows)


def planted_defects(m: pd.DataFrame, truth_csv: str | Path) -> pd.DataFrame:
    """For the demo set: each deliberate defect, how many files carry it and how many were rejected,
    and for which reasons. `truth_csv` is the demo's demo_truth.csv (paths relative to its folder)."""
    truth = pd.read_csv(truth_csv, dtype=str).fillna("")
    root = Path(truth_csv).parent
    truth["source_path"] = [str(root / f) for f in truth.file]
    # only files that curation looked at (masked files of other placements are rejected by name)
    t = truth.merge(m[["source_path", "reason", "placement"]], on="source_path", how="inner")
    t = t[~t.reason.str.startswith("placement:")]
    t["defect"] = t.defect.replace("", "none")
    rows = []
    for (defect, s), g in t.groupby(["defect", "set"]):
        reasons = g.reason[g.reason != ""].str.split(";").explode().value_counts()
        rows.append({"defect": defect, "set": s, "files": len(g), "rejected": int((g.reason != "").sum()),
                     "reasons": ", ".join(f"{k} {v}" for k, v in reasons.items())})
    return pd.DataFrame(rows)


SHEET_TILE = 128  # px: large enough for a person to judge a face


def short_label(text: str, width: int = 18) -> str:
    """A label that fits a tile: long names keep their start and end ('0012...Mask_Chin')."""
    text = str(text)
    return text if len(text) <= width else text[: width // 2 - 1] + "..." + text[-(width - width // 2 - 2):]


def _labelled(tile: np.ndarray, label: str) -> np.ndarray:
    """The tile with its label on a dark band along the bottom (readable on any face)."""
    from PIL import Image, ImageDraw

    pil = Image.fromarray(tile)
    draw = ImageDraw.Draw(pil)
    size = max(10, tile.shape[0] // 11)
    draw.rectangle((0, tile.shape[0] - size - 4, tile.shape[1], tile.shape[0]), fill=(0, 0, 0))
    draw.text((2, tile.shape[0] - size - 3), short_label(label, max(8, tile.shape[1] * 2 // size)),
              fill=(255, 255, 0), font_size=size)
    return np.asarray(pil)


def sheet(paths: list[str], size: int = SHEET_TILE, cols: int = 8, labels: list[str] | None = None) -> np.ndarray:
    """Contact sheet of image files resized to size; unreadable files show as a grey tile."""
    tiles = []
    for k, p in enumerate(paths):
        try:
            tile = read_rgb(p, size)
        except ImageReadError:
            tile = np.full((size, size, 3), 128, np.uint8)
        tiles.append(_labelled(tile, labels[k]) if labels else tile)
    return contact_sheet(tiles, cols=cols)


def sheet_groups(m: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(name, rows) of every sheet: kept per domain, rejected per domain and first reason, images
    where the detector found no face (kept or not), and each placement class."""
    groups = [("kept_" + d, m[(m.domain == d) & m.split.isin(["train", "val", "test"])]) for d in "AB"]
    r = m[(m.reason != "") & ~m.reason.str.startswith("placement:")]
    first = r.reason.str.split(";").str[0].str.replace(r"^manual:.*", "manual", regex=True)
    groups += [(f"rejected_{d}_{why}", r[(r.domain == d) & (first == why)]) for d in "AB" for why in sorted(set(first))]
    faces = pd.to_numeric(m.faces, errors="coerce")
    groups += [(f"no_face_found_{d}", m[(m.domain == d) & (faces == 0)]) for d in "AB"]
    groups += [(f"placement_{p}", m[(m.domain == "B") & (m.placement == p)]) for p in sorted(set(m.placement) - {""})]
    return [(name, g) for name, g in groups if len(g)]


def review_sheets(m: pd.DataFrame, out_dir: str | Path, n: int = 16, size: int = SHEET_TILE,
                  seed: int = 0) -> dict[str, Path]:
    """Write one contact sheet per `sheet_groups` entry to out_dir/figures/; returns the paths.
    Tiles are labelled with the file name (shortened in the middle when long)."""
    out_dir = Path(out_dir) / "figures"
    rng = np.random.default_rng(seed)
    done = {}
    for name, g in sheet_groups(m):
        pick = g.iloc[np.sort(rng.choice(len(g), min(n, len(g)), replace=False))]
        path = out_dir / f"{name}.png"
        write_png(path, sheet(list(pick.source_path), size, labels=[Path(p).stem for p in pick.source_path]))
        done[name] = path
    return done


def pair_checks(out_dir: str | Path) -> pd.DataFrame:
    """pairs_test.csv's checks: pairs per domain and check result."""
    p = pd.DataFrame([dict(r) for r in pair_files.read_held_out(out_dir, "test") or []])
    if p.empty or "check" not in p:
        return pd.DataFrame(columns=["domain", "check", "pairs"])
    return p.groupby(["domain", "check"]).size().rename("pairs").reset_index()


def split_table(m: pd.DataFrame) -> pd.DataFrame:
    """Images per domain and split (train / test / unused / rejected)."""
    return m.groupby(["domain", "split"]).size().unstack(fill_value=0)
