"""Readers on small trees with the real naming (case variants too) and clear layout errors."""

import json

import pytest
from PIL import Image

from maskcycle.data import readers


def _img(path, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (100, 50, 20)).save(path)
    return path


@pytest.mark.parametrize("variant", ["images1024x1024", "thumbnails128x128"])
def test_ffhq_tree(tmp_path, variant):
    root = tmp_path / "ffhq"
    for i in (0, 1, 1000, 1999):
        _img(root / variant / f"{i // 1000 * 1000:05d}" / f"{i:05d}.png")
    _img(root / variant / "00000" / "notes.png")  # not an FFHQ name: ignored
    (root / "LICENSE.txt").write_text("x")
    recs = readers.read_ffhq(root)
    assert [r.id for r in recs] == ["00000", "00001", "01000", "01999"]
    assert all(r.domain == "A" for r in recs)
    assert [r.id for r in readers.read_ffhq(root / variant)] == [r.id for r in recs]  # the images folder itself


def test_ffhq_metadata(tmp_path):
    root = tmp_path / "ffhq"
    _img(root / "images1024x1024" / "00000" / "00000.png")
    assert readers.ffhq_metadata(root) == {}
    (root / "ffhq-dataset-v2.json").write_text(json.dumps({"0": {"category": "training"},
                                                           "1": {"category": "validation"}}))
    assert readers.ffhq_metadata(root) == {"00000": "training", "00001": "validation"}


def test_ffhq_errors_say_expected_and_found(tmp_path):
    with pytest.raises(readers.LayoutError, match="does not exist"):
        readers.read_ffhq(tmp_path / "nope")
    (tmp_path / "wrong" / "pictures").mkdir(parents=True)
    with pytest.raises(readers.LayoutError, match=r"expected an FFHQ tree.*found pictures/"):
        readers.read_ffhq(tmp_path / "wrong")
    (tmp_path / "empty" / "images1024x1024").mkdir(parents=True)
    with pytest.raises(readers.LayoutError, match="NNNNN.png"):
        readers.read_ffhq(tmp_path / "empty")


def test_maskedfacenet_any_case_and_placements(tmp_path):
    root = tmp_path / "mfn"
    _img(root / "CMFD" / "00000" / "00000_Mask.jpg")
    _img(root / "imfd" / "00000" / "00001_Mask_Mouth_Chin.jpg")
    _img(root / "imfd" / "00000" / "00002_mask_nose_mouth.JPG")
    _img(root / "imfd" / "00000" / "00003_Mask_Chin.jpg")
    _img(root / "imfd" / "00000" / "00004_Mask_Ears.jpg")
    _img(root / "imfd" / "00000" / "readme.jpg")
    recs = {r.id: r for r in readers.read_maskedfacenet(root)}
    assert {i: r.placement for i, r in recs.items()} == {
        "00000": "correct", "00001": "nose_uncovered", "00002": "chin_uncovered", "00003": "nose_mouth_uncovered",
        "00004": "unknown"}
    assert all(r.domain == "B" for r in recs.values())


def test_maskedfacenet_errors(tmp_path):
    (tmp_path / "m" / "faces").mkdir(parents=True)
    with pytest.raises(readers.LayoutError, match=r"CMFD/ and/or IMFD/.*found faces/"):
        readers.read_maskedfacenet(tmp_path / "m")
    (tmp_path / "m2" / "CMFD").mkdir(parents=True)
    with pytest.raises(readers.LayoutError, match="no images named"):
        readers.read_maskedfacenet(tmp_path / "m2")


def test_curated_folder(tmp_path):
    root = tmp_path / "cur"
    for sub in ("trainA", "trainB", "testA", "testB"):
        _img(root / sub / f"{sub}1.png")
    recs = readers.read_curated(root)
    assert sorted((r.split, r.domain) for r in recs) == [("test", "A"), ("test", "B"), ("train", "A"), ("train", "B")]
    bad = tmp_path / "bad"
    _img(bad / "trainA" / "x.png")
    with pytest.raises(readers.LayoutError, match="missing trainB"):
        readers.read_curated(bad)
