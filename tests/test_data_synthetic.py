"""The embedded demo set: deterministic, laid out like the real sets, with its planted defects."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from maskcycle.data import demo


def test_render_is_deterministic_and_ids_differ():
    a = demo.render_id(5, 48, seed=1)
    b = demo.render_id(5, 48, seed=1)
    c = demo.render_id(6, 48, seed=1)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(np.asarray(a[k]), np.asarray(b[k]))
    assert not np.array_equal(np.asarray(a["face"]), np.asarray(c["face"]))


def test_masked_image_is_the_same_face_with_a_mask():
    imgs = demo.render_id(2, 64, seed=0)
    face = np.asarray(imgs["face"], np.float32)
    for key in set(imgs) - {"face"}:
        masked = np.asarray(imgs[key], np.float32)
        diff = np.abs(face - masked).mean(axis=(1, 2))  # per row
        assert diff[:16].mean() < 1.0  # forehead and hair untouched
        assert diff[36:52].mean() > 10.0  # mouth and chin region changed (every placement covers part of it)


def test_layout_truth_and_defects(demo_raw):
    truth = pd.read_csv(demo_raw / "demo_truth.csv", dtype=str).fillna("")
    assert (demo_raw / "ffhq" / "images1024x1024" / "00000" / "00000.png").exists()
    assert (demo_raw / "contact_sheet.png").exists()
    files = [demo_raw / f for f in truth.file]
    assert all(p.exists() for p in files)
    masked = truth[truth.set == "maskedfacenet"].file
    assert masked.str.match(r"maskedfacenet/(CMFD/\d{5}/\d{5}_Mask|IMFD/\d{5}/\d{5}_Mask_(Mouth_Chin|Nose_Mouth|Chin))"
                            r"\.jpg$").all()
    assert set(truth.defect) >= {"", "blur", "second_face", "corrupt", "small", "grayscale"}
    for row in truth[truth.defect.isin(["corrupt", "small", "grayscale"])].itertuples():
        path = demo_raw / row.file
        if row.defect == "corrupt":
            with pytest.raises(OSError), Image.open(path) as im:
                im.load()
        else:
            with Image.open(path) as im:
                assert (im.mode == "L") if row.defect == "grayscale" else (im.width < 64)


def test_generate_is_idempotent(demo_raw):
    stamp = (demo_raw / "demo_truth.csv").stat().st_mtime_ns
    demo.generate(demo_raw, n_ids=40, size=128, seed=3, workers=1, progress=False)
    assert (demo_raw / "demo_truth.csv").stat().st_mtime_ns == stamp


def test_defect_plan_covers_every_kind():
    plan = demo.defect_plan(100, seed=0)
    for s in ("ffhq", "masked"):
        assert set(plan[s].values()) == set(demo.DEFECTS)
    # file defects sit on different ids in the two sets; face defects are shared
    assert {i for i, d in plan["ffhq"].items() if d == "blur"} == {i for i, d in plan["masked"].items() if d == "blur"}
