"""Which epoch of a trial is reported: the one that scores best on the validation split.

Reading "best" off the test set flatters a trial (reruns of published unpaired models land well
above their papers' numbers once the epoch is not picked on the test images), so evaluation scores
every saved epoch on valA/valB, picks one epoch per trial here, and reports the test numbers of
that epoch only. The criterion is the first of `CRITERIA` that every candidate has for every
direction the trial learns, averaged over those directions: FID (lower is better) when the
Inception weights are there, else PSNR over the mask region against the true counterpart (higher
is better). Ties go to the earlier epoch. Without a val split (a curation from before val existed,
or a set without identities to hold out) the last epoch is reported, and the record says so.
"""

from __future__ import annotations

import math

# (metric, how, column of a direction): the validation criteria, in order of preference
CRITERIA = (("FID", "min", "FID_{d}"), ("psnr_mask", "max", "psnr_{d}_mask"))


def _value(entry: dict, column: str, directions) -> float | None:
    vals = [entry.get(column.format(d=d)) for d in directions]
    if any(v is None or not math.isfinite(v) for v in vals):
        return None
    return sum(vals) / len(vals)


def choose(entries: list[dict], directions, final_label: str) -> dict:
    """The selection record from the validation entries of the candidate snapshots (each with
    "epoch", "checkpoint" and the metrics): split, metric, how, the chosen checkpoint and epoch,
    and every candidate's value. Falls back to `final_label` when no criterion applies to all."""
    for metric, how, column in CRITERIA:
        values = [_value(e, column, directions) for e in entries]
        if entries and all(v is not None for v in values):
            sign = 1 if how == "min" else -1
            best = min(range(len(entries)), key=lambda i: (sign * values[i], i))
            return {"split": "val", "metric": metric, "how": how, "directions": list(directions),
                    "checkpoint": entries[best]["checkpoint"], "epoch": entries[best]["epoch"],
                    "values": [{"epoch": e["epoch"], "checkpoint": e["checkpoint"], "value": v}
                               for e, v in zip(entries, values)]}
    why = "no candidate has a validation score" if entries else "no validation split"
    return fallback(final_label, why)


def fallback(final_label: str, why: str) -> dict:
    """The record when the epoch is not chosen on validation: the last checkpoint, and why."""
    return {"split": None, "metric": None, "how": None, "checkpoint": final_label, "epoch": None,
            "values": [], "note": f"{why}: the last checkpoint is reported"}


def test_best(by_epoch: list[dict], directions) -> dict:
    """The optimistic numbers: per direction the best test score over the evaluated epochs (chosen
    on the test set itself, so biased downwards for FID), as `<column>_test_best` and its epoch."""
    out = {}
    for _metric, how, column in CRITERIA:
        for d in directions:
            col = column.format(d=d)
            scored = [(e[col], e.get("epoch")) for e in by_epoch if e.get(col) is not None and math.isfinite(e[col])]
            if scored:
                value, epoch = (min if how == "min" else max)(scored, key=lambda t: t[0])
                out[f"{col}_test_best"], out[f"{col}_test_best_epoch"] = value, epoch
    return out
