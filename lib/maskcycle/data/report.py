"""Tables, charts and contact sheets for reviewing a curation (notebook 01 calls these)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

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
    return (b.assign(kept=b.reason == "", used=b.split.isin(["train", "test"]))
            .groupby("placement").agg(images=("id", "size"), kept=("kept", "sum"), used=("used", "sum"))
            .reset_index())


def hit_rates(m: pd.DataFrame) -> pd.DataFrame:
    """The face detector on readable, measured images of each domain: share with >= 1 and == 1 face."""
    d = m[m.faces.notna() & (m.faces >= 0)]
    g = d.groupby("domain").faces
    return pd.DataFrame({"measured": g.size(), "hit_rate(>=1 face)": g.apply(lambda f: (f >= 1).mean()).round(3),
                         "exactly_one": g.apply(lambda f: (f == 1).mean()).round(3),
                         "two_or_more": g.apply(lambda f: (f >= 2).mean()).round(3)}).reset_index()


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


def sheet(paths: list[str], size: int = 64, cols: int = 8, labels: list[str] | None = None) -> np.ndarray:
    """Contact sheet of image files resized to size; unreadable files show as a grey tile."""
    tiles = []
    for p in paths:
        try:
            tiles.append(read_rgb(p, size))
        except ImageReadError:
            tiles.append(np.full((size, size, 3), 128, np.uint8))
    return contact_sheet(tiles, cols=cols, labels=labels)


def review_sheets(m: pd.DataFrame, out_dir: str | Path, n: int = 16, size: int = 64, seed: int = 0) -> dict[str, Path]:
    """Write one contact sheet per (domain, reason) and of kept images to out_dir/figures/; returns paths."""
    out_dir = Path(out_dir) / "figures"
    rng = np.random.default_rng(seed)
    done = {}
    groups = [("kept_" + d, m[(m.domain == d) & m.split.isin(["train", "test"])]) for d in "AB"]
    r = m[(m.reason != "") & ~m.reason.str.startswith("placement:")]
    first = r.reason.str.split(";").str[0].str.replace(r"^manual:.*", "manual", regex=True)
    groups += [(f"rejected_{d}_{why}", r[(r.domain == d) & (first == why)]) for d in "AB" for why in sorted(set(first))]
    groups += [(f"placement_{p}", m[(m.domain == "B") & (m.placement == p)]) for p in sorted(set(m.placement) - {""})]
    for name, g in groups:
        if len(g) == 0:
            continue
        pick = g.iloc[np.sort(rng.choice(len(g), min(n, len(g)), replace=False))]
        path = out_dir / f"{name}.png"
        write_png(path, sheet(list(pick.source_path), size, labels=list(pick.id)))
        done[name] = path
    return done


def split_table(m: pd.DataFrame) -> pd.DataFrame:
    """Images per domain and split (train / test / unused / rejected)."""
    return m.groupby(["domain", "split"]).size().unstack(fill_value=0)
