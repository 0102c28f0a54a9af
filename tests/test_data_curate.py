"""Curation end to end on a small demo set, and the split's properties over random seeds."""

import numpy as np
import pandas as pd
import pytest

from maskcycle.cli import main
from maskcycle.data import curate as C
from maskcycle.data.cache import cached_images
from maskcycle.data.images import list_images, read_rgb


@pytest.mark.parametrize("seed", range(12))
def test_split_is_identity_disjoint_and_deterministic(seed):
    rng = np.random.default_rng(seed)
    ids = [f"{i:05d}" for i in range(int(rng.integers(20, 80)))]
    ids_a = {i for i in ids if rng.random() < 0.9}
    ids_b = {i for i in ids if rng.random() < 0.8}
    ok_a = {i for i in ids if rng.random() < 0.9}
    ok_b = {i for i in ids if rng.random() < 0.9}
    n_train, n_test, n_val = int(rng.integers(3, 15)), int(rng.integers(1, 6)), int(rng.integers(0, 4))
    out = C.split_ids(ids_a, ids_b, n_train, n_test, seed, ok_a, ok_b, n_val=n_val)
    assert out == C.split_ids(ids_a, ids_b, n_train, n_test, seed, ok_a, ok_b, n_val=n_val)
    flat = [i for v in out.values() for i in v]
    assert len(flat) == len(set(flat))  # each id in one bucket: A/B and train/val/test share no identity
    for (split, d), v in out.items():
        assert len(v) <= {"train": n_train, "test": n_test, "val": n_val}[split]
        assert set(v) <= (ids_a if d == "A" else ids_b)
        if split in ("test", "val"):
            assert set(v) <= (ok_a if d == "A" else ok_b)
    a = set(out[("train", "A")]) | set(out[("test", "A")]) | set(out[("val", "A")])
    b = set(out[("train", "B")]) | set(out[("test", "B")]) | set(out[("val", "B")])
    assert not a & b


def test_split_changes_with_seed_and_fills_when_possible():
    ids = {f"{i:05d}" for i in range(100)}
    s0 = C.split_ids(ids, ids, 20, 5, 0, n_val=3)
    s1 = C.split_ids(ids, ids, 20, 5, 1, n_val=3)
    assert s0 != s1
    assert all(len(v) == {"train": 20, "test": 5, "val": 3}[k[0]] for k, v in s0.items())


@pytest.fixture(scope="module")
def curated(demo_raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("cur") / "curated"
    s = C.Settings(n_train=12, n_test=4, n_val=2, load_size=40, min_size=64, seed=0)
    m = C.curate(out, demo_raw / "ffhq", demo_raw / "maskedfacenet", settings=s, workers=1, progress=False)
    return out, m, s


def test_manifest_reasons_and_planted_defects(curated, demo_raw):
    out, m, _ = curated
    assert {"id", "domain", "source_path", "split", "reason", "sharpness", "faces"} <= set(m.columns)
    assert set(m.split) <= {"train", "val", "test", "unused", "rejected"}
    assert ((m.reason != "") == (m.split == "rejected")).all()
    truth = pd.read_csv(demo_raw / "demo_truth.csv", dtype=str).fillna("")
    truth["source_path"] = [str(demo_raw / f) for f in truth.file]
    t = truth.merge(m, on="source_path")
    t = t[~t.reason.str.startswith("placement:")]  # masks of other placements are not decoded
    # the corrupt file among good ones is reported, the rest still curated
    assert (t[t.defect == "corrupt"].reason == "unreadable").all() and len(t[t.defect == "corrupt"]) == 2
    assert t[t.defect == "small"].reason.str.contains("too_small").all()
    assert t[t.defect == "grayscale"].reason.str.contains("not_rgb").all()
    assert t[t.defect == "blur"].reason.str.contains("blurry").all()
    assert m[m.placement.isin(["nose_uncovered", "chin_uncovered", "nose_mouth_uncovered"])].reason.str.startswith(
        "placement:").all()


def test_outputs_disjoint_pairs_and_cache(curated):
    out, m, s = curated
    subs = ("trainA", "trainB", "testA", "testB", "valA", "valB")
    ids = {sub: {p.stem for p in list_images(out / sub)} for sub in subs}
    assert all(len(v) > 0 for v in ids.values()) and len(ids["valA"]) == len(ids["valB"]) == 2
    assert not (ids["trainA"] | ids["testA"] | ids["valA"]) & (ids["trainB"] | ids["testB"] | ids["valB"])
    for d in "AB":  # identity-disjoint splits within a domain too
        assert not ids[f"train{d}"] & ids[f"test{d}"] and not ids[f"val{d}"] & (ids[f"train{d}"] | ids[f"test{d}"])
    val_pairs = pd.read_csv(out / "pairs_val.csv", dtype=str)
    assert len(val_pairs) > 0 and set(val_pairs.file.str[:-4]) <= ids["valA"] | ids["valB"]
    pairs = pd.read_csv(out / "pairs_test.csv", dtype=str)
    assert len(pairs) > 0
    train_sources = set(m[m.split == "train"].source_path)
    assert not set(pairs.counterpart_path) & train_sources
    assert not set(pairs.id) & (ids["trainA"] | ids["trainB"])
    for row in pairs.itertuples():
        assert (out / f"test{row.domain}" / row.file).exists()
        read_rgb(row.counterpart_path)  # every counterpart decodes (the demo plants corrupt files)
    for sub in ("trainA", "testB"):
        cache = cached_images(out / sub, s.load_size)
        assert (out / "cache" / f"{sub}_{s.load_size}.npy").exists()
        files = list_images(out / sub)
        assert cache.shape == (len(files), 40, 40, 3)
        assert all(np.array_equal(cache[k], read_rgb(f)) for k, f in enumerate(files))


def test_rerun_resumes_and_load_size_change_rewrites(curated, demo_raw):
    out, m, s = curated
    m2 = C.curate(out, demo_raw / "ffhq", demo_raw / "maskedfacenet", settings=s, workers=1, progress=False)
    import json

    timing = json.loads((out / "curation.json").read_text())["timing"]
    assert timing["measured"] == 0 and timing["written"] == 0
    pd.testing.assert_frame_equal(m.reset_index(drop=True), m2.reset_index(drop=True))
    s3 = C.Settings(n_train=12, n_test=4, n_val=2, load_size=36, min_size=64, seed=0, exclusions=s.exclusions)
    C.curate(out, demo_raw / "ffhq", demo_raw / "maskedfacenet", settings=s3, workers=1, progress=False)
    timing = json.loads((out / "curation.json").read_text())["timing"]
    assert timing["measured"] == 0 and timing["written"] > 0
    assert read_rgb(next(iter(list_images(out / "trainA")))).shape == (36, 36, 3)
    C.curate(out, demo_raw / "ffhq", demo_raw / "maskedfacenet", settings=s, workers=1, progress=False)  # restore


def test_curated_folder_keeps_its_split(curated, tmp_path):
    out, _, _ = curated
    # 40-px images upscaled to the 256-px work size look blurred: no sharpness threshold here
    m = C.curate(tmp_path / "again", curated=out, settings=C.Settings(load_size=40, sharpness_min=0), workers=1,
                 progress=False)
    assert (m.split == "train").sum() > 0
    for sub in ("trainA", "trainB", "testA", "testB"):
        assert {p.stem for p in list_images(tmp_path / "again" / sub)} <= {p.stem for p in list_images(out / sub)}
    assert set(m.split) <= {"train", "val", "test", "rejected"}
    assert (m.split == "val").sum() == 4  # valA/ and valB/ of the curated folder keep their split


def test_an_unfillable_val_split_is_named(demo_raw, tmp_path):
    s = C.Settings(n_train=2, n_test=2, n_val=10_000, load_size=40, min_size=64, seed=0)
    C.curate(tmp_path / "cur", demo_raw / "ffhq", demo_raw / "maskedfacenet", settings=s, workers=1, progress=False)
    import json

    warnings = json.loads((tmp_path / "cur" / "curation.json").read_text())["warnings"]
    assert any(w.startswith("valA: ") and "of the 10000 asked for" in w for w in warnings)


def test_exclusion_list_errors(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("id,reason\nabc,ugly\n")
    with pytest.raises(C.CurationError, match="x.csv"):
        C.read_exclusions(bad)
    ok = tmp_path / "ok.csv"
    ok.write_text("# c\nid,reason,domain\n12,ugly\n3,pasted,B\n")
    assert C.read_exclusions(ok) == {("00012", ""): "ugly", ("00003", "B"): "pasted"}


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["curate", "--ffhq", str(tmp_path / "none"), "--maskedfacenet", str(tmp_path), "--out",
                 str(tmp_path / "o")]) == 2
    assert "FFHQ root does not exist" in capsys.readouterr().err
    assert main(["curate", "--ffhq", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "needs both" in capsys.readouterr().err


def test_committed_exclusion_list_parses():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "params" / "curation" / "manual_exclusions.csv"
    C.read_exclusions(path)


def test_ffhq_metadata_goes_into_the_manifest(demo_raw, tmp_path):
    import json
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(demo_raw / "ffhq", raw / "ffhq")
    meta = {str(i): {"category": "training"} for i in range(40)}
    (raw / "ffhq" / "ffhq-dataset-v2.json").write_text(json.dumps(meta))
    m = C.curate(tmp_path / "cur", raw / "ffhq", demo_raw / "maskedfacenet", workers=1, progress=False,
                 settings=C.Settings(n_train=12, n_test=4, load_size=40, min_size=64))
    assert (m.ffhq_category == "training").all()


def test_manual_exclusion_rejects_a_kept_image(curated, demo_raw, tmp_path):
    _, m, s = curated
    victim = m[(m.domain == "B") & (m.split == "train")].id.iloc[0]
    excl = tmp_path / "excl.csv"
    excl.write_text(f"# a comment\nid,reason,domain\n{int(victim)},mask looks pasted,B\n")
    s2 = C.Settings(**{**s.__dict__, "exclusions": str(excl)})
    m2 = C.curate(tmp_path / "cur", demo_raw / "ffhq", demo_raw / "maskedfacenet", settings=s2, workers=1,
                  progress=False)
    row = m2[(m2.id == victim) & (m2.source_path.isin(m[m.split == "train"].source_path))]
    assert list(row.reason) == ["manual:mask looks pasted"] and list(row.split) == ["rejected"]
    assert not m2[(m2.id == victim) & (m2.domain == "A")].reason.str.startswith("manual").any()
    assert victim not in {p.stem for p in list_images(tmp_path / "cur" / "trainB")}


def test_training_pairs_are_identity_disjoint_from_test(curated):
    out, m, s = curated
    pairs = pd.read_csv(out / "pairs_train.csv", dtype=str)
    assert 0 < len(pairs) <= s.n_train
    test_ids = set(m[m.split == "test"].id)
    assert not set(pairs.id) & test_ids  # no identity of any test image
    kept = m[m.reason == ""]
    assert set(pairs.source_A) <= set(kept.source_path) and set(pairs.source_B) <= set(kept.source_path)
    for folder, col in (("pairs_trainA", "source_A"), ("pairs_trainB", "source_B")):
        assert sorted(p.name for p in list_images(out / folder)) == sorted(pairs.file)
        row = pairs.iloc[0]
        assert np.array_equal(read_rgb(out / folder / row.file), read_rgb(row[col], s.load_size))
    from maskcycle.config import TrialConfig
    from maskcycle.data.paired_batches import PairedData

    data = PairedData(out, TrialConfig(model="pix2pix", load_size=s.load_size, crop_size=32, netG="resnet_6blocks"))
    assert len(data) == len(pairs)


def test_an_already_curated_folder_gets_no_pair_list(curated, tmp_path):
    out, _, _ = curated
    again = tmp_path / "again"
    C.curate(again, curated=out, settings=C.Settings(load_size=40, sharpness_min=0), workers=1, progress=False)
    assert not (again / "pairs_train.csv").exists()
    from maskcycle.config import TrialConfig
    from maskcycle.data.paired_batches import NoPairsError, PairedData

    with pytest.raises(NoPairsError, match="pairs_train.csv"):
        PairedData(again, TrialConfig(model="pix2pix", load_size=40, crop_size=32, netG="resnet_6blocks"))
