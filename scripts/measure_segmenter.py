"""Mask IoU of the segmenter methods against pair-derived masks (BENCHMARKS.md "Baselines and mask segmentation").

    python scripts/measure_segmenter.py CURATED [--split train|test] [--thresholds 2 2.5 3 ...]

CURATED is a curation output from the raw FFHQ + MaskedFace-Net trees (the demo's:
results/demo/curated): `train` reads pairs_trainB/ + pairs_trainA/ (where thresholds are chosen),
`test` the checked B rows of pairs_test.csv (held out: where the method is chosen). Masked faces
are segmented as aligned crops (landmarks from `faces.crop_landmarks`), the truth is where the
pair differs (`pair_checks.mask_region`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from maskcycle.data import faces, pair_files, segment
from maskcycle.data.images import list_images, read_rgb


def pairs_of(curated: Path, split: str):
    if split == "train":
        for b in list_images(curated / "pairs_trainB"):
            yield read_rgb(b), read_rgb(curated / "pairs_trainA" / b.name)
        return
    for row in pair_files.read_held_out(curated, "test") or []:
        if row["domain"] == "B" and not pair_files.failed_check(row):
            masked = read_rgb(curated / "testB" / row["file"])
            yield masked, read_rgb(row["counterpart_path"], masked.shape[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("curated", type=Path)
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--thresholds", nargs="+", type=float, default=[segment.COLOUR_THRESHOLD])
    args = p.parse_args()
    rows = segment.measure(pairs_of(args.curated, args.split), faces.crop_landmarks, thresholds=args.thresholds)
    for r in sorted(rows, key=lambda r: -r["mean_iou"]):
        print(f"{args.split} {r['method']:9s} threshold {r['threshold']}  n {r['n']}  mean IoU {r['mean_iou']:.3f}"
              f"  median {r['median_iou']:.3f}")


if __name__ == "__main__":
    main()
