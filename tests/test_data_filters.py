"""Each curation filter on crafted inputs."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from maskcycle.data import demo, measures


def _save(tmp_path, name, arr_or_img, **kw):
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    path = tmp_path / name
    img.save(path, **kw)
    return path


@pytest.fixture(scope="module")
def face():
    return demo.render_id(0, 128, seed=0)["face"]


def test_corrupt_file_is_unreadable_not_a_crash(tmp_path, face):
    good = _save(tmp_path, "good.png", face)
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:300])
    m = measures.measure(bad)
    assert m["error"] and measures.reasons(m, measures.Thresholds(min_size=64)) == ["unreadable"]
    (tmp_path / "text.jpg").write_text("not an image")
    assert measures.reasons(measures.measure(tmp_path / "text.jpg"), measures.Thresholds()) == ["unreadable"]


def test_too_small(tmp_path, face):
    m = measures.measure(_save(tmp_path, "s.png", face.resize((40, 40))))
    assert "too_small" in measures.reasons(m, measures.Thresholds(min_size=64))
    assert "too_small" not in measures.reasons(m, measures.Thresholds(min_size=32))


def test_not_rgb_mode_and_gray_content(tmp_path, face):
    t = measures.Thresholds(min_size=64, sharpness_min=0)
    assert "not_rgb" in measures.reasons(measures.measure(_save(tmp_path, "g.png", face.convert("L"))), t)
    gray_rgb = face.convert("L").convert("RGB")  # three equal channels
    assert "not_rgb" in measures.reasons(measures.measure(_save(tmp_path, "g3.png", gray_rgb)), t)
    assert "not_rgb" not in measures.reasons(measures.measure(_save(tmp_path, "c.png", face)), t)


def test_sharpness_separates_blur(tmp_path, face):
    sharp = measures.measure(_save(tmp_path, "a.png", face))["sharpness"]
    blurred = measures.measure(_save(tmp_path, "b.png", face.filter(ImageFilter.GaussianBlur(3))))["sharpness"]
    assert blurred < measures.Thresholds().sharpness_min < sharp
    m = {"error": "", "width": 128, "height": 128, "mode": "RGB", "gray_content": False, "faces": 1,
         "sharpness": blurred}
    assert measures.reasons(m, measures.Thresholds(min_size=64)) == ["blurry"]


def test_face_count_one_and_two():
    # demo faces the cascade finds, then two of them side by side in one picture
    found = []
    for i in range(12):
        im = np.asarray(demo.render_id(i, 128, seed=0)["face"])
        if measures.count_faces(measures.gray_work(im, 256)) == 1:
            found.append(im)
        if len(found) == 2:
            break
    assert len(found) == 2, "the Haar cascade should find most demo faces"
    pair = np.full((256, 256, 3), 90, np.uint8)
    pair[64:192, :128], pair[64:192, 128:] = found
    assert measures.count_faces(measures.gray_work(pair, 256)) >= 2
    empty = np.full((256, 256, 3), 120, np.uint8)
    assert measures.count_faces(measures.gray_work(empty, 256)) == 0


def test_face_reasons_depend_on_thresholds():
    base = {"error": "", "width": 128, "height": 128, "mode": "RGB", "gray_content": False, "sharpness": 50.0}
    t = measures.Thresholds(min_size=64)
    assert measures.reasons({**base, "faces": 2}, t) == ["multiple_faces"]
    assert measures.reasons({**base, "faces": 1}, t) == []
    assert measures.reasons({**base, "faces": 0}, t) == []
    assert measures.reasons({**base, "faces": 0}, measures.Thresholds(min_size=64, require_face=True)) == ["no_face"]
