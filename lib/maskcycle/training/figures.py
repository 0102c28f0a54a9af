"""Figures of one trial folder for the training notebook: loss curves, fakes by epoch, samples.

Each function reads only the files the trainer wrote (losses.csv, samples/epoch_NNN.png,
metrics.json), returns a matplotlib Figure, and saves it as PNG when `save` is given, so the
same figure can be shown in the notebook and linked from a report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from maskcycle.io import save_figure

INDEX_COLUMNS = ("epoch", "batch", "images", "lr")  # losses.csv: these, then the family's losses
# Rows of the trainer's sample grid (train._save_samples), top to bottom; a direction a one-way
# model (CUT, FastCUT, pix2pix) does not learn is a grey row.
GRID_ROWS = ("real A", "fake B", "rec A", "real B", "fake A", "rec B")
_PAD = 2  # torchvision make_grid padding used by the trainer


def epoch_losses(trial_dir: str | Path) -> pd.DataFrame:
    """Mean of every loss per epoch, long format (epoch, loss, value), from losses.csv."""
    path = Path(trial_dir) / "losses.csv"
    df = pd.read_csv(path)
    names = [c for c in df.columns if c not in INDEX_COLUMNS]
    if list(df.columns[:len(INDEX_COLUMNS)]) != list(INDEX_COLUMNS) or not names:
        wanted = [c for c in INDEX_COLUMNS if c not in df.columns] or ["(a loss)"]
        raise ValueError(f"{path}: missing column(s) {', '.join(wanted)}")
    if df.empty:
        raise ValueError(f"{path}: no rows yet (no iteration finished)")
    means = df.groupby("epoch")[names].mean().reset_index()
    return means.melt(id_vars="epoch", var_name="loss", value_name="value")


def loss_curves(trial_dir: str | Path, save: str | Path | None = None):
    """Every loss of the trial (CycleGAN's eight), mean per epoch, one panel each (scales differ)."""
    import seaborn as sns

    long = epoch_losses(trial_dir)
    grid = sns.relplot(data=long, x="epoch", y="value", col="loss", col_order=list(dict.fromkeys(long["loss"])),
                       col_wrap=4, kind="line", marker="o", height=2.2, aspect=1.3,
                       facet_kws={"sharey": False})
    from matplotlib.ticker import MaxNLocator

    for ax in grid.axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    grid.set_titles("{col_name}")
    grid.set_axis_labels("epoch", "mean loss")
    grid.figure.suptitle(f"{Path(trial_dir).name}: losses per epoch", y=1.02)
    return save_figure(grid.figure, save)


def sample_grids(trial_dir: str | Path) -> dict[int, Path]:
    """{epoch: path} of the per-epoch sample grids, in epoch order."""
    found = {}
    for p in (Path(trial_dir) / "samples").glob("epoch_*.png"):
        m = re.fullmatch(r"epoch_(\d+)\.png", p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def grid_rows(path: str | Path) -> dict[str, np.ndarray]:
    """Split one sample grid into its six rows (uint8 strips, padding removed around each row)."""
    img = np.asarray(Image.open(path).convert("RGB"))
    h = img.shape[0]
    tile = (h - _PAD) // len(GRID_ROWS) - _PAD
    if tile < 1 or (tile + _PAD) * len(GRID_ROWS) + _PAD != h:
        raise ValueError(f"{path}: height {h} is not a grid of {len(GRID_ROWS)} rows")
    return {name: img[_PAD + r * (tile + _PAD):_PAD + r * (tile + _PAD) + tile]
            for r, name in enumerate(GRID_ROWS)}


def pick_epochs(epochs: list[int], n: int) -> list[int]:
    """Up to n epochs spread evenly from first to last (always both ends)."""
    if len(epochs) <= n:
        return list(epochs)
    idx = np.unique(np.round(np.linspace(0, len(epochs) - 1, n)).astype(int))
    return [epochs[i] for i in idx]


def fakes_by_epoch(trial_dir: str | Path, n_epochs: int = 6, save: str | Path | None = None):
    """The fixed sample images through training: real inputs on top, then fake B (mask on) and
    fake A (mask off) at up to `n_epochs` epochs."""
    grids = sample_grids(trial_dir)
    if not grids:
        raise FileNotFoundError(f"{Path(trial_dir) / 'samples'}: no epoch_NNN.png sample grids")
    chosen = pick_epochs(list(grids), n_epochs)
    rows = {e: grid_rows(grids[e]) for e in chosen}
    first = rows[chosen[0]]
    strip = first["fake B"]
    row_h = 1.3  # inches per image row; width follows the strips' aspect so columns sit close
    width = 2 * row_h * strip.shape[1] / strip.shape[0] + 1.5
    fig, axes = plt.subplots(len(chosen) + 1, 2, squeeze=False, figsize=(width, row_h * (len(chosen) + 1) + 0.6))
    panels = [("real A", "real B", "input")] + [("fake B", "fake A", f"epoch {e}") for e in chosen]
    for i, (left, right, label) in enumerate(panels):
        src = first if i == 0 else rows[chosen[i - 1]]
        for j, key in enumerate((left, right)):
            ax = axes[i, j]
            ax.imshow(src[key])
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center")
    axes[0, 0].set_title("A -> B (mask on)")
    axes[0, 1].set_title("B -> A (mask off)")
    fig.suptitle(f"{Path(trial_dir).name}: fakes by epoch")
    fig.tight_layout()
    return save_figure(fig, save)


def final_samples(trial_dir: str | Path, save: str | Path | None = None):
    """The last epoch's grid in both directions: real, fake and reconstruction, labelled."""
    grids = sample_grids(trial_dir)
    if not grids:
        raise FileNotFoundError(f"{Path(trial_dir) / 'samples'}: no epoch_NNN.png sample grids")
    epoch, path = list(grids.items())[-1]
    rows = grid_rows(path)
    aspect = rows["real A"].shape[1] / rows["real A"].shape[0]
    fig, axes = plt.subplots(len(GRID_ROWS), 1, figsize=(1.4 * aspect + 1.2, 1.4 * len(GRID_ROWS)), squeeze=False)
    for ax, name in zip(axes[:, 0], GRID_ROWS):
        ax.imshow(rows[name])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle(f"{Path(trial_dir).name}: samples after epoch {epoch}")
    fig.tight_layout()
    return save_figure(fig, save)


def throughput(trial_dir: str | Path) -> pd.DataFrame:
    """Training speed from metrics.json: images seen, training seconds, mean and last-epoch img/s."""
    path = Path(trial_dir) / "metrics.json"
    m = json.loads(path.read_text())
    wall = m.get("train_wall_s") or 0.0
    return pd.DataFrame([{
        "epochs": f"{m.get('epochs_done')}/{m.get('epochs_total')}",
        "images_seen": m.get("images_seen"),
        "train_wall_s": wall,
        "mean_img_per_s": round(m["images_seen"] / wall, 2) if wall else None,
        "last_epoch_img_per_s": m.get("last_epoch_img_per_s"),
    }])

