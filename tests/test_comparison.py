"""The study's answer: comparison.csv (seed means, intervals, differences to the baseline, Holm),
refusals, and the epoch chosen on the validation split with test numbers of that epoch only."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as sps

from conftest import make_paired_curated, register_tiny_extractor, tiny_config
from maskcycle.config import TrialConfig
from maskcycle.evaluation import comparison, evaluate
from maskcycle.evaluation import statistics as st


def fake_run(sweep: Path, trial: str, seed: int, scores: dict, first: bool = False, **settings) -> Path:
    folder = sweep / (trial if first else f"{trial}_seed{seed}")
    folder.mkdir(parents=True)
    TrialConfig(name=trial, seed=seed, **settings).to_yaml(folder / "config.yaml")
    (folder / "run.json").write_text(json.dumps({"status": "finished"}))
    (folder / "eval").mkdir()
    (folder / "eval" / "metrics.json").write_text(json.dumps({"directions": "AB,BA", **scores}))
    return folder


def test_seed_means_welch_differences_and_holm(tmp_path):
    base = {0: 50.0, 1: 54.0, 2: 52.0}
    better = {0: 30.0, 1: 33.0, 2: 31.5}
    same = {0: 51.0, 1: 55.0, 2: 50.0}
    for trial, values in (("baseline", base), ("better", better), ("same", same)):
        for i, (seed, v) in enumerate(values.items()):
            fake_run(tmp_path, trial, seed, {"FID_AB": v, "FID_BA": v + 10}, first=i == 0)
    table = comparison.write_comparison(tmp_path)
    on_disk = pd.read_csv(tmp_path / comparison.COMPARISON)
    assert list(on_disk.columns) == comparison.COLUMNS
    row = table[(table.trial == "better") & (table.metric == "FID") & (table.direction == "AB")].iloc[0]
    ref = sps.ttest_ind(list(better.values()), list(base.values()), equal_var=False)
    assert row["p"] == pytest.approx(ref.pvalue) and row["n_seeds"] == 3 and row["seeds"] == "0 1 2"
    assert row["diff"] == pytest.approx(31.5 - 52.0) and row["test"] == "Welch t over seeds"
    t = st.t_interval(list(better.values()))
    assert (row["mean"], row["lo"], row["hi"]) == pytest.approx((t["mean"], t["lo"], t["hi"]))
    assert row["interval"] == "t over seeds"
    other = table[(table.trial == "same") & (table.metric == "FID") & (table.direction == "AB")].iloc[0]
    # Holm over the two trials compared with the baseline in this (metric, direction) family
    assert [row["p_holm"], other["p_holm"]] == pytest.approx(st.holm([row["p"], other["p"]]))
    assert row["beyond_noise"] and not other["beyond_noise"]
    b = table[(table.trial == "baseline") & (table.metric == "FID")]
    assert b["diff"].isna().all() and len(b) == 2
    short = comparison.answer_table(table)
    assert list(short.columns) == ["trial", "dir", "metric", "seeds", "mean [95% CI]", "diff to baseline [95% CI]",
                                   "p (Holm)", "beyond noise"]
    assert set(short["dir"]) == {"AB", "BA"} and "yes" in set(short["beyond noise"])


def test_single_seed_uses_the_within_run_interval_and_says_so(tmp_path):
    fake_run(tmp_path, "baseline", 0, {"psnr_AB_mask": 20.0, "psnr_AB_mask_lo": 19.0, "psnr_AB_mask_hi": 21.0,
                                       "psnr_AB_mask_se": 0.5, "directions": "AB"}, first=True)
    fake_run(tmp_path, "other", 0, {"psnr_AB_mask": 22.0, "psnr_AB_mask_lo": 21.2, "psnr_AB_mask_hi": 22.8,
                                    "psnr_AB_mask_se": 0.4, "directions": "AB"}, first=True)
    table = comparison.write_comparison(tmp_path)
    row = table[table.trial == "other"].iloc[0]
    assert row["interval"] == "within-run bootstrap over test images (1 seed)"
    assert (row["lo"], row["hi"]) == (21.2, 22.8)
    z = st.z_difference(22.0, 0.4, 20.0, 0.5)
    assert row["p"] == pytest.approx(z["p"]) and row["test"].startswith("z on standard errors")
    assert row["better"] == "higher"


def test_seeds_that_disagree_in_other_settings_are_refused(tmp_path):
    fake_run(tmp_path, "baseline", 0, {"FID_AB": 50.0}, first=True)
    fake_run(tmp_path, "baseline", 1, {"FID_AB": 52.0})
    fake_run(tmp_path, "mixed", 0, {"FID_AB": 40.0}, first=True, lr=0.001)
    fake_run(tmp_path, "mixed", 1, {"FID_AB": 41.0}, lr=0.002)
    table = comparison.write_comparison(tmp_path)
    refused = table[table.trial == "mixed"]
    assert len(refused) == 1 and refused["mean"].isna().all()
    assert "differ in settings other than the seed" in refused.iloc[0]["refused"]
    assert "lr: 0.001 vs 0.002" in refused.iloc[0]["refused"]
    assert table[table.trial == "baseline"]["refused"].isna().all()


def test_no_baseline_is_a_clear_error(tmp_path):
    fake_run(tmp_path, "other", 0, {"FID_AB": 1.0}, first=True)
    with pytest.raises(comparison.ComparisonError, match="no evaluated trial named 'baseline'"):
        comparison.compare(tmp_path)


@pytest.fixture(scope="module")
def val_sweep(tmp_path_factory):
    """Two trials x 2 seeds, trained 2 epochs at 32 px on a curated set with a val split."""
    from maskcycle.training.trainer import train

    root = tmp_path_factory.mktemp("answer")
    curated = make_paired_curated(root, n_val=3)
    sweep = root / "sweep"
    for trial, changes in (("baseline", {}), ("vanilla", {"gan_mode": "vanilla"})):
        for seed in (0, 1):
            folder = sweep / (trial if seed == 0 else f"{trial}_seed{seed}")
            train(tiny_config(curated, name=trial, seed=seed, seeds=2, **changes), folder, progress=False)
            (folder / "run.json").write_text(json.dumps({**json.loads((folder / "run.json").read_text()),
                                                         "status": "finished"}))
    return sweep, curated


@pytest.mark.slow
def test_epoch_is_chosen_on_val_and_test_numbers_are_that_epochs(val_sweep):
    sweep, curated = val_sweep
    name = register_tiny_extractor()
    table = evaluate.evaluate_sweep(sweep, curated, feature_extractor=name, device="cpu", progress=False,
                                    fid_ref_n=4)
    assert list(table["trial"]) == ["baseline", "baseline", "vanilla", "vanilla"]
    assert list(table["seed"]) == [0, 1, 0, 1]
    for run in ("baseline", "vanilla_seed1"):
        rec = json.loads((sweep / run / "eval" / "metrics.json").read_text())
        sel = rec["selection"]
        assert rec["epoch_chosen_on"] == "val" and sel["metric"] == "FID" and rec["n_val_A"] == 3
        vals = {v["epoch"]: v["value"] for v in sel["values"]}
        assert set(vals) == {1, 2} and vals[sel["epoch"]] == min(vals.values())
        val_entry = next(e for e in rec["val_by_epoch"] if e["epoch"] == sel["epoch"])
        assert vals[sel["epoch"]] == pytest.approx((val_entry["FID_AB"] + val_entry["FID_BA"]) / 2)
        test_entry = next(e for e in rec["by_epoch"] if e["epoch"] == sel["epoch"])
        assert rec["epoch"] == sel["epoch"] and rec["FID_AB"] == test_entry["FID_AB"]
        assert rec["FID_AB_test_best"] == min(e["FID_AB"] for e in rec["by_epoch"])  # optimistic, labelled
        # every FID says what it compared; within-run interval and FID at the reference size
        assert rec["fid_resize"] == "legacy" and rec["FID_AB_n_fake"] == rec["FID_AB_n_real"] == 4
        assert rec["FID_AB_format_fake"] == rec["FID_AB_format_real"] == "PNG" and rec["FID_AB_size"] == "32x32"
        assert rec["FID_AB_lo"] <= rec["FID_AB_hi"] and rec["FID_AB_ref"] is not None
        assert [c["n"] for c in rec["FID_AB_by_n"]][-1] == 4
    summary = pd.read_csv(sweep / "summary.csv")
    assert {"FID_AB_lo", "FID_AB_format_real", "fid_resize", "epoch_chosen_on"} <= set(summary.columns)
    comp = pd.read_csv(sweep / "comparison.csv")
    row = comp[(comp.trial == "vanilla") & (comp.metric == "FID") & (comp.direction == "BA")].iloc[0]
    assert row["n_seeds"] == 2 and row["test"] == "Welch t over seeds" and not math.isnan(row["p_holm"])


def test_the_composite_variants_of_a_trials_seed_runs_are_one_trial(tmp_path):
    """`<trial>_seed1+composite` is seed 1 of `<trial>+composite`: pooled over seeds in comparison.csv
    (it once stood alone as a one-seed trial named after its folder)."""
    from maskcycle import results

    for seed in (0, 1):
        run = fake_run(tmp_path, "baseline", seed, {"FID_AB": 50.0 + seed}, first=seed == 0)
        variant = evaluate.composite_variant(run)
        assert variant.name == ("baseline+composite" if seed == 0 else "baseline_seed1+composite")
        (variant / "eval").mkdir()  # its scores, as evaluation writes them
        (variant / "eval" / "metrics.json").write_text(json.dumps({"directions": "AB,BA", "FID_AB": 40.0 + seed}))
    names = {r.name: results.trial_name(r, results.trial_settings(r)) for r in results.find_trials(tmp_path)}
    assert names["baseline_seed1+composite"] == names["baseline+composite"] == "baseline+composite"
    assert names["baseline_seed1"] == "baseline"
    row = next(r for r in comparison.compare(tmp_path) if r.get("trial") == "baseline+composite"
               and r.get("metric") == "FID")
    assert row["n_seeds"] == 2 and row["seeds"] == "0 1" and row["test"] == "Welch t over seeds"
