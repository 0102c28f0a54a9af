"""Issue 24, items 4 and 6 (second reliability pass): nothing done is never exit 0; photos keep their
alpha and ICC profile; the survey crops non-square images and writes its files all or none; Ctrl-C
is one line and exit 130; an unwritable output fails before the work."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
from PIL import Image, ImageCms

from conftest import make_image_folders
from maskcycle import cli
from maskcycle.data import measures
from test_bad_inputs import checksums, run_cli


def translate(capsys, generator, folder, out, *extra):
    return run_cli(capsys, "translate", "--checkpoint", generator, "--direction", "AB", "--input", folder,
                   "--output", out, "--device", "cpu", *extra)


# --- item 6: asked to work, nothing done ------------------------------------------------------------
def test_empty_folder_is_an_error_for_translate_and_faces(tmp_path, capsys, generator):
    folder = tmp_path / "in"
    folder.mkdir()
    code, _, err = translate(capsys, generator, folder, tmp_path / "out")
    assert code == 2 and "no image files to work on (it is empty" in err
    (folder / "notes.txt").write_text("x")
    code, _, err = run_cli(capsys, "faces", "--input", folder, "--out", tmp_path / "f.csv")
    assert code == 2 and "1 other file(s), none an image: notes.txt" in err
    assert not (tmp_path / "f.csv").exists()


def test_a_folder_of_heic_files_says_what_it_found(tmp_path, capsys, generator):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in (1, 2, 3):
        (folder / f"IMG_000{k}.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(100))
    code, out, err = translate(capsys, generator, folder, tmp_path / "out")
    assert code == 1 and "wrote 0 of 3" in out
    assert "nothing done: 3 file(s), none readable: IMG_0001.HEIC (HEIC is not supported" in err
    assert sum(line.startswith(str(folder)) for line in err.splitlines()) == 3  # one line per file
    code, _, err = run_cli(capsys, "faces", "--input", folder, "--out", tmp_path / "f.csv")
    assert code == 1 and "nothing done: 3 file(s), none readable: IMG_0001.HEIC (HEIC is not supported" in err


# --- item 4: what the README promises about photos -----------------------------------------------
def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_translate_keeps_alpha_and_icc_profile(tmp_path, capsys, generator):
    from skimage import data

    folder = tmp_path / "in"
    folder.mkdir()
    rgb = data.astronaut()
    alpha = np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    icc = _srgb_profile()
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(folder / "rgba.png", icc_profile=icc)
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    code, out, err = translate(capsys, generator, folder, tmp_path / "out")
    assert code == 0, err
    with Image.open(tmp_path / "out" / "rgba.png") as img:
        assert img.mode == "RGBA" and img.info.get("icc_profile") == icc
        assert np.array_equal(np.asarray(img.getchannel("A")), alpha)  # alpha as it was
        corner = np.asarray(img.convert("RGB"))[:40, -40:]
    assert np.array_equal(corner, rgb[:40, -40:])  # pixels away from the face unchanged
    assert "palette.png: 2 face(s), written (palette written as RGB)" in out  # said, per file (HOG: 2 faces)


def test_cmyk_profile_is_not_put_on_rgb_output(tmp_path):
    from maskcycle.data.images import decode_photo

    cmyk_icc = bytearray(_srgb_profile())
    cmyk_icc[16:20] = b"CMYK"
    Image.new("CMYK", (32, 32)).save(tmp_path / "c.jpg", icc_profile=bytes(cmyk_icc))
    photo = decode_photo(tmp_path / "c.jpg")
    assert photo.icc is None and "CMYK ICC profile is not kept" in "; ".join(photo.notes)


def test_survey_build_crops_non_square_images_and_says_so(tmp_path, capsys):
    root = make_image_folders(tmp_path / "sq", n=6, size=32, splits=("test",))
    wide = tmp_path / "wide"
    wide.mkdir()
    rng = np.random.default_rng(0)
    for k in range(6):
        Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(wide / f"w{k}.png")
    code, _, err = run_cli(capsys, "survey", "build", "--real-a", root / "testA", "--real-b", root / "testB",
                           "--fakes-ab", wide, "--fakes-ba", root / "testB", "--allow-unpaired", "--n", 8,
                           "--out", tmp_path / "s")
    assert code == 0, err
    info = json.loads((tmp_path / "s" / "survey.json").read_text())
    assert info["image_size"] == 32 and info["centre_cropped"]
    assert all("(48x32)" in c for c in info["centre_cropped"])
    assert "not square, centre-cropped to a square" in err


def test_survey_build_full_disk_leaves_no_key_without_its_page(tmp_path, capsys, monkeypatch):
    root = make_image_folders(tmp_path / "sq", n=6, size=32, splits=("test",))
    real_write = type(tmp_path).write_text

    def full(self, *a, **k):
        if ".survey.html." in self.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, *a, **k)

    monkeypatch.setattr(type(tmp_path), "write_text", full)
    out = tmp_path / "s"
    code, _, err = run_cli(capsys, "survey", "build", "--real-a", root / "testA", "--real-b", root / "testB",
                           "--fakes-ab", root / "testA", "--fakes-ba", root / "testB", "--allow-unpaired", "--n", 8,
                           "--out", out)
    assert code == 2 and f"{out / 'survey.html'}: no space left on device" in err, err
    assert sorted(p.name for p in out.iterdir()) == []  # neither key.csv nor survey.json, no temp files


def test_ctrl_c_during_curate_is_one_line_and_keeps_the_measurements(tmp_path, capsys, monkeypatch):
    src = make_image_folders(tmp_path / "src", n=4, size=40)
    real_measure, calls = measures.measure, []

    def measure_then_interrupt(*a, **k):
        calls.append(a[0])
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_measure(*a, **k)

    monkeypatch.setattr(measures, "measure", measure_then_interrupt)
    code, _, err = run_cli(capsys, "curate", "--curated", src, "--out", tmp_path / "out", "--load-size", 36,
                           "--workers", 1, "--no-sheets")
    assert code == cli.INTERRUPTED == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1] == ("maskcycle curate: interrupted; what was finished is kept: rerun the same "
                                            "command to go on")  # after the progress bar, one line
    rows = (tmp_path / "out" / "judgments.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # header + the four measured before Ctrl-C


def test_translate_into_a_read_only_folder_fails_before_the_face_work(tmp_path, capsys, generator, monkeypatch):
    from maskcycle import io as mio
    from maskcycle.data import faces

    photos = make_image_folders(tmp_path / "in", n=2, size=40, splits=("test",)) / "testA"
    real_mkstemp = mio.tempfile.mkstemp

    def read_only(*a, **k):
        if str(k.get("dir", "")).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkstemp(*a, **k)

    def no_face_work(*a, **k):
        raise AssertionError("face work started")

    monkeypatch.setattr(mio.tempfile, "mkstemp", read_only)
    monkeypatch.setattr(faces, "detect", no_face_work)
    before = checksums(photos)
    code, _, err = translate(capsys, generator, photos, tmp_path / "out")
    assert code == 2 and f"{tmp_path / 'out'}: read-only file system" in err, err
    assert checksums(photos) == before
