"""Curation on real-looking inputs: the astronaut photo (scikit-image), images resized or paired
wrongly on purpose, curated folders whose names mean nothing."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from maskcycle.cli import main
from maskcycle.data import curate as C
from maskcycle.data import faces, measures, pair_checks, report
from maskcycle.data.images import read_rgb
from maskcycle.evaluation import held_out


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    import skimage

    return read_rgb(Path(skimage.__file__).parent / "data" / "astronaut.png")


@pytest.fixture(scope="module")
def aligned(astronaut) -> np.ndarray:
    face = faces.main_face(faces.detect(astronaut, "hog"))
    return faces.align(astronaut, faces.landmarks(astronaut, face), 256).image


def _masked(img: np.ndarray, top: float = 0.6, bottom: float = 0.98) -> np.ndarray:
    """A grey 'mask' drawn over nose, mouth and chin of an FFHQ-aligned face."""
    out = img.copy()
    h, w = img.shape[:2]
    out[int(top * h):int(bottom * h), int(0.28 * w):int(0.72 * w)] = (90, 140, 200)
    return out


def _folder(root: Path, img: np.ndarray, side: int, n: int = 3, splits=("train", "test")) -> Path:
    """A curated folder with n slightly shifted crops per split and domain, numbered 0000.png ..."""
    for split in splits:
        for d in "AB":
            (root / f"{split}{d}").mkdir(parents=True, exist_ok=True)
            for k in range(n):
                crop = img[k * 4:k * 4 + 480, k * 3:k * 3 + 480]
                crop = _masked(crop) if d == "B" else crop
                Image.fromarray(crop).resize((side, side), Image.LANCZOS).save(root / f"{split}{d}" / f"{k:04d}.png")
    return root


def test_a_folder_of_small_images_is_an_error_that_says_what_to_change(astronaut, tmp_path, capsys):
    src = _folder(tmp_path / "small", astronaut, 96)
    args = ["curate", "--curated", str(src), "--out", str(tmp_path / "out"), "--workers", "1", "--load-size", "128",
            "--detector", "haar", "--no-sheets"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "trainA: 0 images of the 3 asked for" in err and "too_small 6" in err
    assert "--load-size 96" in err and "--allow-upscale" in err
    assert "too_small rejects 6 of 6 images of domain A" in err  # the > 25 % warning
    assert main(args + ["--allow-upscale"]) == 0
    m = pd.read_csv(tmp_path / "out" / "manifest.csv", dtype=str, keep_default_na=False)
    assert (m.split != "rejected").all()


def test_curated_names_are_not_identities_unless_a_pairs_csv_says_so(astronaut, tmp_path):
    src = _folder(tmp_path / "cur", astronaut, 128)
    s = C.Settings(load_size=128, detector="haar", pair_faces=False)
    m = C.curate(tmp_path / "out", curated=src, settings=s, workers=1, progress=False)
    # 0000.png in trainA and trainB are not one person: nothing thrown away, no pairs
    assert (m.note != "identity used in the other domain").all() and (m.split != "unused").all()
    assert (m.identity_source == C.IDENTITY_NONE).all()
    assert len(pd.read_csv(tmp_path / "out" / "pairs_test.csv")) == 0
    (tmp_path / "pairs.csv").write_text("a,b\ntestA/0000.png,testB/0000.png\ntestA/0001.png,testB/0001.png\n")
    m = C.curate(tmp_path / "out2", curated=src, settings=C.Settings(load_size=128, detector="haar",
                 pair_faces=False, pairs=str(tmp_path / "pairs.csv")), workers=1, progress=False)
    p = pd.read_csv(tmp_path / "out2" / "pairs_test.csv", dtype=str)
    assert sorted(p.file) == ["0000.png", "0000.png", "0001.png", "0001.png"] and (p.check == "ok").all()
    assert (m.identity_source == C.IDENTITY_PAIRS).all()
    (tmp_path / "bad.csv").write_text("a,b\ntestA/0000.png,testA/0001.png\n")
    with pytest.raises(C.CurationError, match="line 2: b='testA/0001.png' is not an image of trainB/ or testB/"):
        C.curate(tmp_path / "out3", curated=src, settings=C.Settings(load_size=128, pairs=str(tmp_path / "bad.csv")),
                 workers=1, progress=False)


def test_pair_checks_flag_wrong_pairs_and_derive_placement(aligned, astronaut):
    ok = pair_checks.check_pair(_masked(aligned), aligned)
    assert ok["check"] == "ok" and 0.10 <= ok["mask_share"] <= 0.35
    assert ok["derived_placement"] == "correct" and ok["upper_face_distance"] < faces.SAME_PERSON
    other = np.asarray(Image.fromarray(astronaut[:256, 256:]))  # not the same photo at all
    assert pair_checks.check_pair(_masked(aligned), other)["check"] == "mask_region_large"
    tiny = _masked(aligned, 0.9, 0.93)  # a thin strip: too little to be a mask
    assert "mask_region_small" in pair_checks.check_pair(tiny, aligned)["check"]
    low = pair_checks.check_pair(_masked(aligned, 0.78, 0.95), aligned)  # a mask below the mouth, named correct
    assert "nose_or_mouth_outside_region" in low["check"] and low["derived_placement"] != "correct"
    assert pair_checks.placement_from(0.0, 1.0, 1.0) == "nose_uncovered"
    assert pair_checks.placement_from(1.0, 1.0, 0.0) == "chin_uncovered"


def test_evaluation_leaves_flagged_pairs_out(tmp_path):
    for sub in ("testA", "testB"):
        (tmp_path / sub).mkdir()
        for k in range(2):
            Image.new("RGB", (8, 8)).save(tmp_path / sub / f"{k}.png")
    cp = tmp_path / "testB" / "0.png"
    (tmp_path / "pairs_test.csv").write_text(
        f"domain,file,id,counterpart_path,check\nA,0.png,0,{cp},ok\nA,1.png,1,{cp},mask_region_large\n")
    rows, note = held_out.read_pairs(tmp_path, ["0.png", "1.png"], ["0.png", "1.png"])
    assert [r["file"] for r in rows] == ["0.png"] and note is None
    assert held_out.flagged_pairs(tmp_path) == 1


def test_blur_threshold_from_the_distribution_catches_sigma1_blur(astronaut):
    rng = np.random.default_rng(0)
    crops = [astronaut[y:y + 300, x:x + 300] for y, x in rng.integers(0, 200, (16, 2))]
    sharp = [measures.sharpness(measures.gray_work(c, 256)) for c in crops]
    blurred = np.asarray(Image.fromarray(crops[0]).filter(ImageFilter.GaussianBlur(1.5)))
    soft = measures.sharpness(measures.gray_work(blurred, 256))
    thr = measures.sharpness_threshold(sharp, floor=8.0, k=3.0)
    assert soft > 8.0  # the old constant lets it through
    assert soft < thr <= min(sharp)
    assert measures.sharpness_threshold(sharp, floor=1e6, k=3.0) == 1e6  # the floor holds
    assert measures.sharpness_threshold(sharp[:5], floor=8.0, k=3.0) == 8.0  # too few to estimate a tail


def test_masked_faces_are_counted_on_their_counterpart():
    masked = {"faces": 1, "faces_dlib": 0, "error": ""}
    unmasked = {"faces": 1, "faces_dlib": 2, "error": ""}
    assert C._face_count(masked, unmasked, "hog") == (2, "counterpart")
    assert C._face_count(masked, None, "hog") == (0, "self")
    assert C._face_count(masked, None, "haar") == (1, "self")


def test_contact_sheet_tiles_and_labels(tmp_path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "a_very_long_file_name_of_a_photo_00042_Mask_Mouth_Chin.png")
    label = report.short_label("a_very_long_file_name_of_a_photo_00042_Mask_Mouth_Chin")
    assert len(label) <= 18 and label.startswith("a_very") and label.endswith("Chin")
    sheet = report.sheet([str(next(tmp_path.glob("*.png")))], labels=[label])
    assert sheet.shape[0] >= report.SHEET_TILE >= 128
    m = pd.DataFrame({"domain": ["A", "A"], "split": ["train", "rejected"], "reason": ["", "blurry"],
                      "placement": ["", ""], "faces": [0, 1], "source_path": [str(next(tmp_path.glob("*.png")))] * 2})
    names = {name for name, _ in report.sheet_groups(m)}
    assert {"kept_A", "rejected_A_blurry", "no_face_found_A"} <= names
