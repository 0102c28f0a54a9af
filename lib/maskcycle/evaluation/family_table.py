"""Every family side by side, direction by direction (notebook 03): the learned models, their
composited variants and the non-learned baselines in one table per direction, and which learned
model beats which baseline on which metric.

Plain means over the test set: no intervals yet, so a small difference is no evidence (the
statistics of issue 21 will add them).
"""

from __future__ import annotations

import pandas as pd

from maskcycle.config import non_learned
from maskcycle.evaluation import metrics


def _rows(table: pd.DataFrame, direction: str) -> pd.DataFrame:
    if table.empty or "directions" not in table:
        return table.iloc[:0]
    has = table["directions"].fillna("").str.split(",").apply(lambda ds: direction in ds)
    done = table["evaluated"].fillna(False).astype(bool) if "evaluated" in table else has
    return table[has & done]


def kind(row: pd.Series) -> str:
    """baseline, learned + composite, or learned."""
    if row.get("model") in non_learned():
        return "baseline"
    return "learned + composite" if row.get("composite") == "mask" else "learned"


def family_table(table: pd.DataFrame, direction: str) -> pd.DataFrame:
    """One row per trial that translates `direction`: family, kind and every metric measured for
    it (columns no trial has are left out), baselines first."""
    rows = _rows(table, direction)
    if rows.empty:
        return pd.DataFrame()
    out = pd.DataFrame({"trial": rows["trial"], "model": rows["model"], "kind": rows.apply(kind, axis=1)})
    for m in metrics.tabled():
        col = m.column(direction)
        if col in rows and pd.to_numeric(rows[col], errors="coerce").notna().any():
            out[m.shown_as] = pd.to_numeric(rows[col], errors="coerce").round(4)
    order = {"baseline": 0, "learned": 1, "learned + composite": 2}
    return out.sort_values(["kind", "trial"], key=lambda c: c.map(order) if c.name == "kind" else c).reset_index(
        drop=True)


def beats(table: pd.DataFrame, direction: str) -> pd.DataFrame:
    """Rows: learned trials (and their composited variants); columns: the baselines of `direction`;
    each cell lists the metrics on which the learned model's mean is better than the baseline's
    ("none" when it is better on none)."""
    ft = family_table(table, direction)
    if ft.empty:
        return ft
    base, learned = ft[ft["kind"] == "baseline"], ft[ft["kind"] != "baseline"]
    ranked = [(m.shown_as, m.lower_is_better) for m in metrics.tabled() if m.ranks and m.shown_as in ft]
    cells = {}
    for _, b in base.iterrows():
        column = []
        for _, m in learned.iterrows():
            won = [label for label, lower in ranked if pd.notna(m[label]) and pd.notna(b[label])
                   and (m[label] < b[label] if lower else m[label] > b[label])]
            column.append(", ".join(won) or "none")
        cells[f"beats {b['trial']} on"] = column
    return pd.DataFrame({"learned": learned["trial"].tolist(), **cells})


def verdict(table: pd.DataFrame, direction: str) -> str:
    """One sentence per learned trial: the baselines it beats on the direction's headline metric
    (FID when measured, else PSNR over the mask region)."""
    ft = family_table(table, direction)
    if ft.empty or not (ft["kind"] == "baseline").any():
        return f"{direction}: no baseline was scored"
    label, how = ("FID", "min") if "FID" in ft and ft["FID"].notna().any() else ("PSNR mask", "max")
    if label not in ft:
        return f"{direction}: no comparable metric"
    base = ft[ft["kind"] == "baseline"]
    lines = []
    for _, m in ft[ft["kind"] != "baseline"].iterrows():
        won = [b["trial"] for _, b in base.iterrows() if pd.notna(m[label]) and pd.notna(b[label])
               and (m[label] < b[label] if how == "min" else m[label] > b[label])]
        others = ", ".join(f"{t} {v:.3f}" for t, v in zip(base["trial"], base[label]))
        lines.append(f"- {m['trial']}: beats {', '.join(won) if won else 'no baseline'} on {label} "
                     f"({m[label]:.3f}; baselines {others})")
    return f"**{direction}** (headline metric {label}, plain means, no intervals):\n" + "\n".join(lines)
