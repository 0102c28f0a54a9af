"""A documented simulator of quiz participants, for the demo and for checking the analysis.

Model (equal-variance signal detection, the "signal" being a generated image): participant i has
sensitivity d'_i ~ Normal(dprime, sd_dprime) and criterion c_i ~ Normal(criterion, sd_criterion).
Each image gives a private impression x ~ Normal(+d'_i / 2, 1) if generated, Normal(-d'_i / 2, 1)
if real; the answer is "fake" when x > c_i. So P(fake | fake) = Phi(d'_i/2 - c_i) and
P(fake | real) = Phi(-d'_i/2 - c_i). Attention checks are answered as asked, except with
probability `lapse`. Response times are log-normal (median `rt_median_ms`).

Across participants the pooled rates are H = Phi((d/2 - c) / s), F = Phi((-d/2 - c) / s) with
s = sqrt(1 + sd_dprime^2 / 4 + sd_criterion^2), so the pooled d' and c that an analysis recovers
are the stated ones divided by s (`implied` below states them); with no spread they are equal.

Output files carry "simulated" in their names; they have the page's CSV columns exactly.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from maskcycle.config import add_field_arguments, check_field_types, from_arguments, setting
from maskcycle.io import atomic_write_text, check_output
from maskcycle.survey.page import INFO_NAME, KEY_NAME, PAGE_NAME, survey_id_of

RESPONSE_COLUMNS = ["participant_id", "session_start", "trial_index", "image_id", "response", "rt_ms",
                    "is_practice", "is_attention_check", "survey_id"]
LEGACY_COLUMNS = RESPONSE_COLUMNS[:-1]  # files written before the survey id was recorded in them
PARAMS_NAME = "simulated_params.json"


@dataclasses.dataclass(frozen=True)
class SimParams:
    """The stated abilities of the simulated population."""

    n_participants: int = setting(100, "simulated participants")
    dprime: float = setting(0.5, "mean sensitivity to generated images (0 = chance)")
    criterion: float = setting(0.2, "mean bias; > 0 leans to 'real', so more fakes pass as real")
    sd_dprime: float = setting(0.3, "spread of sensitivity between participants")
    sd_criterion: float = setting(0.2, "spread of bias between participants")
    lapse: float = setting(0.02, "attention checks answered wrongly at this rate")
    rt_median_ms: float = setting(1800.0, "median response time")
    seed: int = setting(0, "seed of the simulation")

    def __post_init__(self) -> None:
        check_field_types(self, ValueError)
        if self.n_participants < 1 or not 0 <= self.lapse <= 1 or min(self.sd_dprime, self.sd_criterion) < 0:
            raise ValueError(f"simulator settings out of range: {self}")

    def implied(self) -> dict:
        """Pooled rates and the pooled d', c an analysis of many participants converges to."""
        s = math.sqrt(1 + self.sd_dprime ** 2 / 4 + self.sd_criterion ** 2)
        h = stats.norm.cdf((self.dprime / 2 - self.criterion) / s)
        f = stats.norm.cdf((-self.dprime / 2 - self.criterion) / s)
        return {"hit_rate": float(h), "false_alarm_rate": float(f), "fool_rate": float(1 - h),
                "real_error_rate": float(f), "error_rate": float((1 - h + f) / 2),
                "dprime": self.dprime / s, "criterion": self.criterion / s, "scale": s}


def read_key_rows(survey_dir: str | Path) -> list[dict]:
    with open(Path(survey_dir) / KEY_NAME, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def simulate(survey_dir: str | Path, out_dir: str | Path, params: SimParams = SimParams()) -> list[Path]:
    """Write one `simulated_<participant>.csv` per participant (practice, attention checks and main
    trials in a shuffled order, as the page would) and `simulated_params.json`; returns the CSVs."""
    if params.n_participants < 1:
        raise ValueError(f"n_participants must be >= 1, got {params.n_participants}")
    key = read_key_rows(survey_dir)
    practice = [r for r in key if r["role"] == "practice"]
    main = [r for r in key if r["role"] == "main"]
    checks = [r for r in key if r["role"] == "attention"]
    sid = survey_id_of(key)
    rng = np.random.default_rng(params.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.UTC)
    written = []
    for i in range(params.n_participants):
        pid = f"sim{i + 1:03d}"
        d_i = rng.normal(params.dprime, params.sd_dprime)
        c_i = rng.normal(params.criterion, params.sd_criterion)
        order = practice + [main[j] for j in rng.permutation(len(main))]
        for k, chk in enumerate(checks):  # spread through the main part, as the page does
            order.insert(len(practice) + round((k + 1) * len(main) / (len(checks) + 1)) + k, chk)
        start = (t0 + dt.timedelta(minutes=7 * i)).isoformat().replace("+00:00", "Z")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(RESPONSE_COLUMNS)
        for t, row in enumerate(order):
            if row["role"] == "attention":
                ok = rng.random() >= params.lapse
                resp = row["expected_response"] if ok else ("fake" if row["expected_response"] == "real" else "real")
            else:
                mean = d_i / 2 if row["truth"] == "fake" else -d_i / 2
                resp = "fake" if rng.normal(mean, 1.0) > c_i else "real"
            rt = int(round(params.rt_median_ms * math.exp(rng.normal(0, 0.4))))
            w.writerow([pid, start, t, row["image_id"], resp, rt, int(row["role"] == "practice"),
                        int(row["role"] == "attention"), sid])
        path = out_dir / f"simulated_{pid}.csv"
        atomic_write_text(path, buf.getvalue())
        written.append(path)
    for stale in set(out_dir.glob("simulated_*.csv")) - set(written):  # from an earlier, larger run
        stale.unlink()
    info = {"simulated": True, "params": dataclasses.asdict(params), "implied": params.implied(),
            "model": "equal-variance SDT; see maskcycle.survey.simulate"}
    atomic_write_text(out_dir / PARAMS_NAME, json.dumps(info, indent=2) + "\n")
    return written


# --- command line ------------------------------------------------------------------------
def add_arguments(p) -> None:
    """`maskcycle survey simulate`: the survey, the output folder, one flag per SimParams field."""
    p.add_argument("--survey", required=True, help="folder with key.csv")
    p.add_argument("--out", required=True, help="folder for simulated_<id>.csv and simulated_params.json")
    add_field_arguments(p, SimParams)


def run_command(args) -> int:
    survey = Path(args.survey)
    check_output(args.out, [("--survey", [survey / n for n in (KEY_NAME, INFO_NAME, PAGE_NAME)])])
    files = simulate(args.survey, args.out, from_arguments(SimParams, args))
    print(f"wrote {len(files)} simulated response files to {args.out}")
    return 0
