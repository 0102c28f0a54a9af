"""Evaluation of a tiny finished sweep: translation, FID/KID through torch-fidelity with a tiny
registered extractor, paired metrics, FID over training, the results table, reuse, missing
Inception weights, reference checkpoints and the CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import make_tiny_sweep, register_tiny_extractor
from maskcycle.cli import main as cli_main
from maskcycle.data.cache import cached_images
from maskcycle.evaluation import evaluate, held_out
from maskcycle.evaluation import fid as fidlib
from maskcycle.evaluation.translate import translate_array
from maskcycle.models import checkpoints


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalsweep")
    return make_tiny_sweep(root)


@pytest.fixture
def offline_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(fidlib.WEIGHTS_ENV, raising=False)


def test_sweep_with_tiny_extractor(sweep):
    sweep_dir, curated = sweep
    name = register_tiny_extractor()
    table = evaluate.evaluate_sweep(sweep_dir, curated, feature_extractor=name, device="cpu", progress=False)
    assert list(table["trial"]) == ["bs2_lsgan", "bs3_vanilla"]
    # the varied hyper-parameters are columns, right after the trial, seed and run folder
    assert list(table.columns[1:5]) == ["seed", "run", "gan_mode", "batch_size"]
    for col in ("FID_AB", "FID_BA", "KID_AB", "KID_BA", "psnr_BA", "ssim_BA_mask", "psnr_AB_mask", "epochs"):
        assert table[col].notna().all(), col
    assert table["best_FID_AB"].sum() == 1 and table["best_FID_BA"].sum() == 1
    assert table.loc[table["best_FID_AB"], "FID_AB"].item() == table["FID_AB"].min()
    on_disk = pd.read_csv(sweep_dir / "summary.csv")  # the sweep's one table, with the scores merged
    assert list(on_disk["trial"]) == list(table["trial"])
    assert on_disk.set_index("trial")["FID_AB"].to_dict() == pytest.approx(table.set_index("trial")["FID_AB"].to_dict())
    assert not (sweep_dir / "results.csv").exists()

    trial = sweep_dir / "bs2_lsgan"
    record = json.loads((trial / "eval" / "metrics.json").read_text())
    assert record["fid_available"] and record["feature_extractor"] == name
    assert record["checkpoint"] == "epoch_002.pt" and record["epoch"] == 2
    assert [e["epoch"] for e in record["by_epoch"]] == [1, 2]  # FID over training, both saved epochs
    assert record["n_pairs_AB"] == 4 and record["n_pairs_BA"] == 4
    fakes_AB = sorted((trial / "eval" / "fakes_AB").glob("*.png"))
    fakes_BA = sorted((trial / "eval" / "fakes_BA").glob("*.png"))
    assert [p.name for p in fakes_AB] == [f"{i:04d}.png" for i in range(4)]
    assert [p.name for p in fakes_BA] == [f"{i:04d}.png" for i in range(4, 8)]

    # FID_AB recomputed independently from the PNGs on disk: G_AB(test A) vs real test B at crop size
    fakes = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in fakes_AB])
    assert fakes.shape == (4, 32, 32, 3)
    real_B = np.asarray(cached_images(curated / "testB", 32))
    ext = fidlib.load_extractor(name)
    assert record["FID_AB"] == pytest.approx(fidlib.fid_from_features(fidlib.features(ext, fakes),
                                                                      fidlib.features(ext, real_B)), rel=1e-9)
    # the fakes are what the final generator makes
    cfg, G_AB, _ = checkpoints.load_generators(trial / "checkpoints" / "epoch_002.pt")
    again = translate_array(G_AB, np.asarray(cached_images(curated / "testA", 32)), cfg)
    assert np.array_equal(again, fakes)

    rows = pd.read_csv(trial / "eval" / "paired.csv")
    assert len(rows) == 8 and set(rows["direction"]) == {"AB", "BA"}
    assert rows["mask_fraction"].between(0.15, 0.6).all()  # the drawn box covers ~ 0.22 of the image
    assert record["psnr_BA"] == pytest.approx(rows[rows.direction == "BA"]["psnr"].mean())
    curves = evaluate.fid_curves(sweep_dir)
    assert len(curves) == 4 and curves["FID_AB"].notna().all()


def test_rerun_reuses_results(sweep, monkeypatch):
    sweep_dir, curated = sweep
    name = register_tiny_extractor()
    evaluate.evaluate_sweep(sweep_dir, curated, feature_extractor=name, device="cpu", progress=False)
    before = json.loads((sweep_dir / "bs2_lsgan" / "eval" / "metrics.json").read_text())

    def fail(*args, **kwargs):
        raise AssertionError("an unchanged checkpoint was evaluated again")

    monkeypatch.setattr(evaluate, "evaluate_snapshot", fail)
    evaluate.evaluate_sweep(sweep_dir, curated, feature_extractor=name, device="cpu", progress=False)
    after = json.loads((sweep_dir / "bs2_lsgan" / "eval" / "metrics.json").read_text())
    assert after["by_epoch"] == before["by_epoch"] and after["FID_AB"] == before["FID_AB"]


def test_missing_inception_weights_still_gives_the_other_metrics(sweep, offline_torch_home, tmp_path):
    sweep_dir, curated = sweep
    table = evaluate.evaluate_sweep(sweep_dir, curated, download=False, every_k_epochs=0, device="cpu",
                                    progress=False)
    assert table["FID_AB"].isna().all() and not table["best_FID_AB"].any()
    assert table["psnr_BA"].notna().all() and table["ssim_AB_mask"].notna().all()
    record = json.loads((sweep_dir / "bs3_vanilla" / "eval" / "metrics.json").read_text())
    assert record["fid_available"] is False
    assert fidlib.INCEPTION_WEIGHTS_FILE in record["fid_unavailable_reason"]
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in record["fid_unavailable_reason"]
    assert [e["epoch"] for e in record["by_epoch"]] == [2]  # every_k_epochs=0: the final only
    # the CLI says why, and --require-fid turns it into a failure
    assert cli_main(["evaluate", "--sweep", str(sweep_dir), "--curated", str(curated), "--no-download",
                     "--every-k-epochs", "0"]) == 0
    assert cli_main(["evaluate", "--sweep", str(sweep_dir), "--curated", str(curated), "--no-download",
                     "--every-k-epochs", "0", "--require-fid"]) == 3


def test_reference_checkpoints_scored_the_same_way(sweep, tmp_path):
    sweep_dir, curated = sweep
    name = register_tiny_extractor()
    trial = sweep_dir / "bs3_vanilla"
    cfg, G_AB, G_BA = checkpoints.load_generators(trial / "checkpoints" / "epoch_002.pt")
    ref = tmp_path / "reference_run"
    ref.mkdir()
    # the reference saves bare state dicts: G_A = our G_AB, G_B = our G_BA
    for label, ckpt in (("1", "epoch_001.pt"), ("latest", "epoch_002.pt")):
        _, a, b = checkpoints.load_generators(trial / "checkpoints" / ckpt)
        torch.save(a.state_dict(), ref / f"{label}_net_G_A.pth")
        torch.save(b.state_dict(), ref / f"{label}_net_G_B.pth")
    scorer = evaluate.open_scorer(name)
    rec = evaluate.evaluate_reference(ref, curated, cfg, tmp_path / "scored", scorer, progress=False)
    ours = evaluate.evaluate_trial(trial, scorer, curated, progress=False)
    assert rec["checkpoint"] == "latest" and [e["checkpoint"] for e in rec["by_epoch"]] == ["1", "latest"]
    assert rec["FID_AB"] == pytest.approx(ours["FID_AB"]) and rec["FID_BA"] == pytest.approx(ours["FID_BA"])
    assert rec["psnr_BA_mask"] == pytest.approx(ours["psnr_BA_mask"])
    assert len(list((tmp_path / "scored" / "eval" / "fakes_BA").glob("*.png"))) == 4
    # the same through the CLI, with the run's settings given by --set
    settings = [f"{k}={getattr(cfg, k)}" for k in ("netG", "ngf", "norm", "crop_size", "load_size")]
    assert cli_main(["evaluate", "--reference", str(ref), "--curated", str(curated), "--out", str(tmp_path / "cli"),
                     "--feature-extractor", name, "--set", *settings]) == 0
    cli_rec = json.loads((tmp_path / "cli" / "eval" / "metrics.json").read_text())
    assert cli_rec["FID_AB"] == pytest.approx(rec["FID_AB"])


def test_unfinished_trial_is_listed_not_evaluated(sweep, tmp_path, offline_torch_home):
    import shutil

    sweep_dir, curated = sweep
    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir / "bs2_lsgan", copy / "bs2_lsgan")
    run = json.loads((copy / "bs2_lsgan" / "run.json").read_text())
    (copy / "bs2_lsgan" / "run.json").write_text(json.dumps({**run, "status": "stopped"}))
    shutil.rmtree(copy / "bs2_lsgan" / "eval")
    table = evaluate.evaluate_sweep(copy, curated, download=False, device="cpu", progress=False)
    assert table.loc[0, "status"] == "stopped" and not table.loc[0, "evaluated"]
    assert not (copy / "bs2_lsgan" / "eval").exists()


def test_bad_pairs_file_names_the_problem(tmp_path):
    root = tmp_path / "cur"
    (root / "testA").mkdir(parents=True)
    (root / "pairs_test.csv").write_text("domain,file\nA,x.png\n")
    with pytest.raises(ValueError, match=r"pairs_test.csv: missing column\(s\) counterpart_path, id"):
        held_out.read_pairs(root, ["a.png"], ["b.png"])
    (root / "pairs_test.csv").write_text("domain,file,id,counterpart_path\nA,a.png,1,x.png\nB,zz.png,2,y.png\n")
    with pytest.raises(FileNotFoundError, match="line 2: counterpart_path 'x.png' not found"):
        held_out.read_pairs(root, ["a.png"], ["b.png"])
    (root / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"line 3: file 'zz.png' is not in testB/"):
        held_out.read_pairs(root, ["a.png"], ["b.png"])
    rows, note = held_out.read_pairs(tmp_path / "elsewhere", [], [])
    assert rows == [] and "pairs_test.csv" in note


def test_undecodable_counterpart_drops_its_pair_only(tmp_path):
    from conftest import make_paired_curated

    curated = make_paired_curated(tmp_path)
    bad = tmp_path / "raw" / "unmasked" / "0005.png"  # counterpart of test B 0005.png
    bad.write_bytes(bad.read_bytes()[:60])  # truncated, as a damaged download
    test = held_out.load_test_sets(curated, 32)
    assert len(test.pairs) == 7 and len(test.pairs_skipped) == 1
    assert test.pairs_skipped[0].startswith("B/0005.png:") and "0005.png" in test.pairs_skipped[0]
    assert all(p["truth"].shape == (32, 32, 3) for p in test.pairs)


def test_tables_and_figures_with_fid(sweep, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from maskcycle.evaluation import figures

    sweep_dir, curated = sweep
    name = register_tiny_extractor()
    table = evaluate.evaluate_sweep(sweep_dir, curated, feature_extractor=name, device="cpu", progress=False)
    shown = figures.display_table(table)
    assert sum(str(v).startswith("* ") for v in shown["FID_AB"]) == 1
    pub = figures.published_comparison(table).set_index("direction")
    assert pub.loc["FID_AB", "published best (study)"] == 17.07
    assert pub.loc["FID_BA", "published range (study)"] == "48.39-261.78"
    assert pub.loc["FID_BA", "ours best"] == round(table["FID_BA"].min(), 2)
    fig = figures.direction_bars(table, save=tmp_path / "bars.png")
    assert "published best (study)" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()][1]
    figures.training_curves(evaluate.fid_curves(sweep_dir), save=tmp_path / "curves.png")
    figures.example_pairs(sweep_dir / "bs2_lsgan", n=2, save=tmp_path / "ex.png")
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("bars.png", "curves.png", "ex.png"))


@pytest.mark.slow
def test_runs_scored_in_worker_processes_give_the_same_numbers(tmp_path, monkeypatch, capsys):
    from maskcycle.evaluation import metrics
    from maskcycle.models import families

    for name in ("identity", "darken"):  # test_add_one's, registered in this process only when it is imported
        monkeypatch.delitem(families.FAMILIES, name, raising=False)
        monkeypatch.delitem(families.BASELINES, name, raising=False)
    sweep, curated = make_tiny_sweep(tmp_path)
    kw = dict(download=False, progress=False, device="cpu", force=True)
    one = evaluate.evaluate_sweep(sweep, curated, workers=1, **kw)
    capsys.readouterr()
    two = evaluate.evaluate_sweep(sweep, curated, workers=2, **kw)
    assert "registered here only" not in capsys.readouterr().err  # scored in the workers
    timing = {"eval_wall_s", "evaluated_at"}
    pd.testing.assert_frame_equal(one.drop(columns=list(timing)), two.drop(columns=list(timing)))
    assert one["psnr_BA"].notna().all() and one["fd_face_AB"].notna().all()
    # a metric registered in this process only: new processes would lack it, so the runs are scored here
    gap = metrics.Metric("gap", True, compute=lambda fakes, reals, pairs: {"gap": float(fakes.mean() - reals.mean())})
    monkeypatch.setattr(metrics, "METRICS", [*metrics.METRICS, gap])
    capsys.readouterr()
    three = evaluate.evaluate_sweep(sweep, curated, workers=2, **kw)
    assert "registered here only (metrics: gap)" in capsys.readouterr().err.replace("\n", " ")
    assert three["gap_AB"].notna().all()
