"""Real faces (issue 12): dlib detection, FFHQ alignment, paste-back, descriptors and `translate` in
photo mode, on scikit-image's astronaut.png (a real, public-domain photo read from the installed
wheel; not committed here)."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_config
from maskcycle.cli import main
from maskcycle.data import faces
from maskcycle.data.images import read_rgb

ASTRONAUT = files("skimage") / "data" / "astronaut.png"
# FFHQ's alignment puts the eye centres at (384, 488) and (640, 488) of its 1024-px images
# (eyes 1/4 of the side apart about the centre line, ~0.48 of the side down).
FFHQ_EYES_1024 = np.array([[384.0, 488.0], [640.0, 488.0]])


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return read_rgb(ASTRONAUT)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from conftest import make_image_folders
    from maskcycle.training.trainer import train

    root = tmp_path_factory.mktemp("faces_ckpt")
    data = make_image_folders(root / "data", n=4)
    trial = train(tiny_config(data, n_epochs=1, n_epochs_decay=0), root / "trial", progress=False)
    return trial / "checkpoints" / "latest.pt"


def test_hog_finds_the_astronauts_face(astronaut):
    found = faces.detect(astronaut)
    assert found, "no face found"
    left, top, right, bottom = faces.main_face(found).box  # her face, upper middle of the photo
    assert 150 < (left + right) / 2 < 300 and 50 < (top + bottom) / 2 < 200
    assert 60 < right - left < 140 and found[0].score > 0.5


def test_alignment_puts_the_eyes_where_ffhq_does(astronaut):
    lm = faces.landmarks(astronaut, faces.detect(astronaut)[0])
    crop = faces.align(astronaut, lm, 256)
    assert crop.image.shape == (256, 256, 3)
    # measured again on the aligned crop, independently of the transform
    again = faces.landmarks(crop.image, faces.detect(crop.image, upsample=0)[0])
    eyes = np.stack([again[36:42].mean(axis=0), again[42:48].mean(axis=0)]) + 0.5
    assert np.abs(eyes - FFHQ_EYES_1024 / 4).max() < 4, eyes
    # and the kept transform maps the photo's eyes to the same place
    photo_eyes = np.stack([lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)]) + 0.5
    mapped = photo_eyes @ crop.to_aligned[:, :2].T + crop.to_aligned[:, 2]
    assert np.abs(mapped - eyes).max() < 3


def test_paste_back_leaves_pixels_away_from_the_face_unchanged(astronaut):
    lm = faces.landmarks(astronaut, faces.detect(astronaut)[0])
    crop = faces.align(astronaut, lm, 64)
    same = faces.paste_back(astronaut, crop.image, crop.to_aligned)
    out = faces.paste_back(astronaut, 255 - crop.image, crop.to_aligned)
    changed = (out != astronaut).any(axis=2)
    assert changed.sum() > 2000  # the face was replaced
    ys, xs = np.nonzero(changed)
    quad = crop.quad
    assert xs.min() >= quad[:, 0].min() and xs.max() <= quad[:, 0].max() + 1
    assert ys.min() >= quad[:, 1].min() and ys.max() <= quad[:, 1].max() + 1
    # the crop warped back onto itself reproduces the photo closely (only resampling blur)
    assert np.abs(same.astype(int) - astronaut).mean() < 1.0


def test_descriptor_of_an_image_with_itself_is_zero_and_aligned_close(astronaut):
    box = faces.detect(astronaut)[0]
    d1, d2 = faces.descriptor(astronaut, box), faces.descriptor(astronaut, box)
    assert d1.shape == (128,) and np.linalg.norm(d1 - d2) == 0
    crop = faces.align(astronaut, faces.landmarks(astronaut, box), 128)
    d3, found = faces.aligned_descriptor(crop.image)
    assert found and np.linalg.norm(d1 - d3) < faces.SAME_PERSON
    blank = np.full((64, 64, 3), 128, np.uint8)  # no face: described at the fixed aligned box
    d4, found = faces.aligned_descriptor(blank)
    assert not found and np.linalg.norm(d1 - d4) > faces.SAME_PERSON


def _exif_rotated_canvas(astronaut: np.ndarray, path) -> np.ndarray:
    """astronaut on a larger noisy canvas, stored turned on its side with EXIF orientation 6 (as a
    phone writes it); returns the upright image a viewer shows."""
    rng = np.random.default_rng(0)
    canvas = rng.integers(0, 255, (700, 900, 3), dtype=np.uint8)
    canvas[120:632, 300:812] = astronaut
    stored = Image.fromarray(canvas).transpose(Image.Transpose.ROTATE_90)  # 6 = turn 270 to view
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, exif=exif)
    return canvas


def test_translate_photo_mode_pastes_into_an_exif_rotated_photo(astronaut, checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    upright = _exif_rotated_canvas(astronaut, inputs / "photo.png")
    assert Image.open(inputs / "photo.png").size == (700, 900)  # stored sideways
    assert read_rgb(inputs / "photo.png").shape == upright.shape  # read upright
    Image.fromarray(np.full((200, 300, 3), 90, np.uint8)).save(inputs / "wall.png")
    code = main(["translate", "--checkpoint", str(checkpoint), "--direction", "AB", "--input", str(inputs),
                 "--output", str(tmp_path / "out"), "--faces", "largest", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 1  # the face-less file failed
    assert "wall.png: 0 face(s), no face" in captured.err and "photo.png: 2 face(s), written" in captured.out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo.png"]
    out = read_rgb(tmp_path / "out" / "photo.png")
    assert out.shape == upright.shape
    left, top, right, bottom = 175 + 300, 76 + 120, 266 + 300, 167 + 120  # her face in the canvas
    cx, cy, half = (left + right) / 2, (top + bottom) / 2, 0.75 * (right - left)
    outside = np.ones(upright.shape[:2], bool)
    outside[int(cy - 1.6 * half):int(cy + 1.6 * half), int(cx - 1.6 * half):int(cx + 1.6 * half)] = False
    assert np.array_equal(out[outside], upright[outside])
    face = (slice(top + 20, bottom - 10), slice(left + 10, right - 10))
    assert np.abs(out[face].astype(int) - upright[face]).mean() > 5


def test_translate_refuses_a_size_the_generator_cannot_take(checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(inputs / "a.png")
    code = main(["translate", "--checkpoint", str(checkpoint), "--direction", "BA", "--input", str(inputs),
                 "--output", str(tmp_path / "out"), "--size", "250"])
    assert code == 2 and "--size 250" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    code = main(["translate", "--checkpoint", str(checkpoint), "--direction", "BA", "--input", str(inputs),
                 "--output", str(inputs / "sub")])
    assert code == 2 and "input folder" in capsys.readouterr().err


def test_translate_aligned_writes_at_the_input_size(checkpoint, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(inputs / "x.jpg")
    code = main(["translate", "--checkpoint", str(checkpoint), "--direction", "AB", "--input", str(inputs / "x.jpg"),
                 "--output", str(tmp_path / "out"), "--aligned", "--size", "40"])
    assert code == 0
    with Image.open(tmp_path / "out" / "x.jpg") as img:
        assert img.size == (70, 50) and img.format == "JPEG"


def test_faces_command_writes_one_row_per_file(astronaut, tmp_path):
    import pandas as pd

    photos = tmp_path / "in"  # the CSV goes outside the input folder (issue 24's output rule)
    photos.mkdir()
    Image.fromarray(astronaut).save(photos / "astronaut.png")
    Image.fromarray(np.full((100, 100, 3), 200, np.uint8)).save(photos / "blank.png")
    (photos / "broken.png").write_bytes(b"not a png")
    assert main(["faces", "--input", str(photos), "--out", str(tmp_path / "out" / "faces.csv")]) == 1
    table = pd.read_csv(tmp_path / "out" / "faces.csv").set_index("path")
    assert table.loc[str(photos / "astronaut.png"), "n_faces"] >= 1
    assert table.loc[str(photos / "astronaut.png"), "right"] > table.loc[str(photos / "astronaut.png"), "left"]
    assert table.loc[str(photos / "blank.png"), "n_faces"] == 0
    assert "cannot decode" in table.loc[str(photos / "broken.png"), "error"]
