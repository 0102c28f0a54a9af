"""Issue 24, item 1: no image file can crash a process. Every image goes through one guarded decode
(`images.check_shape`: sides, aspect ratio, pixels, mode) before dlib or OpenCV sees it.

The commands run in subprocesses, so that a native crash (SIGABRT from `malloc(): corrupted top
size`, SIGSEGV) shows as an exit by signal instead of killing pytest."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_image_folders
from maskcycle.data import faces
from maskcycle.data.images import MAX_ASPECT, MIN_SIDE, ImageReadError, read_rgb

REPO = Path(__file__).resolve().parents[1]
MODES = ("1", "L", "LA", "P", "I;16", "I", "CMYK", "RGBA", "RGB", "F", "YCbCr")
FORMATS = {"1": "PNG", "L": "PNG", "LA": "PNG", "P": "PNG", "I;16": "PNG", "I": "TIFF", "CMYK": "JPEG",
           "RGBA": "PNG", "RGB": "PNG", "F": "TIFF", "YCbCr": "JPEG"}
SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif"}


def run(*argv, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "lib"), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def assert_no_signal(p: subprocess.CompletedProcess) -> None:
    assert p.returncode >= 0 and p.returncode != 134, f"exit {p.returncode} (signal)\n{p.stderr[-3000:]}"


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def fuzz_images(folder: Path, n: int, seed: int = 0, budget: int = 40_000,
                astronaut: np.ndarray | None = None) -> list[Path]:
    """n files: sides 1..40000 (log-uniform, w * h within `budget`), odd modes, truncated data,
    zero-byte files, noise, and (given `astronaut`) a real face in strips of extreme aspect."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        if rng.random() < 0.35:  # near the guard's limits: readable shapes that reach dlib and OpenCV
            b = int(rng.integers(MIN_SIDE - 1, 200))
            a = min(budget // max(b, 1), int(b * rng.uniform(1, MAX_ASPECT + 1)))
        else:
            a = int(np.exp(rng.uniform(0, np.log(40_000))))
            b = int(np.exp(rng.uniform(0, np.log(max(1, min(40_000, budget // a))))))
        w, h = (a, b) if rng.random() < 0.5 else (b, a)
        mode = MODES[rng.integers(len(MODES))]
        kinds = ["image"] * 6 + ["truncated", "empty", "garbage"] + (["face"] if astronaut is not None else [])
        kind = rng.choice(kinds)
        fmt = FORMATS[mode]
        name = f"{k:03d}_{kind}_{w}x{h}_{mode.replace(';', '')}{SUFFIX[fmt]}"
        if kind == "face":  # the astronaut's face in a strip at the guard's limits (or beyond)
            side = int(rng.integers(40, 200))
            long_side = int(side * rng.choice([1, 4, MAX_ASPECT, MAX_ASPECT + 1, 40]))
            face = np.asarray(Image.fromarray(astronaut).resize((side, side)))
            canvas = np.zeros((side, long_side, 3), np.uint8)
            canvas[:, :side] = face
            data = _encode(Image.fromarray(canvas if rng.random() < 0.5 else canvas.transpose(1, 0, 2).copy()), "PNG")
            name = f"{k:03d}_face_{long_side}x{side}.png"
        elif kind == "empty":
            data = b""
        elif kind == "garbage":
            data = rng.integers(0, 256, int(rng.integers(1, 4000)), dtype=np.uint8).tobytes()
        else:
            rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            if mode == "I;16":
                img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
            elif mode == "F":
                img = Image.fromarray(rng.random((h, w), dtype=np.float32))
            else:
                img = Image.fromarray(rgb).convert(mode)
            data = _encode(img, fmt)
            if kind == "truncated":
                data = data[: max(1, int(len(data) * rng.uniform(0.1, 0.9)))]
        path = folder / name
        path.write_bytes(data)
        out.append(path)
    return out


# --- the guard itself (fast) ------------------------------------------------------------------------
@pytest.mark.parametrize("w,h,words", [(20_000, 20, "too thin to hold a face: 20000x20"),
                                       (20, 20_000, "too thin to hold a face: 20x20000"),
                                       (5, 5, "too small to hold a face: 5x5"),
                                       (1, 1, "too small")])
def test_check_shape_names_the_problem(tmp_path, w, h, words):
    Image.new("RGB", (w, h)).save(tmp_path / "x.png")
    with pytest.raises(ImageReadError, match=rf"x\.png: {words}"):
        read_rgb(tmp_path / "x.png")


def test_unsupported_modes_and_formats_are_named(tmp_path):
    Image.fromarray(np.zeros((16, 16), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match=r"f\.tif: image mode F is not supported"):
        read_rgb(tmp_path / "f.tif")
    (tmp_path / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    with pytest.raises(ImageReadError, match="HEIC is not supported"):
        read_rgb(tmp_path / "IMG_0001.HEIC")


def test_shapes_at_the_guards_limits_reach_dlib_safely():
    """The detector's working images at the extremes the guard lets through (aspect MAX_ASPECT,
    side MIN_SIDE, large sides reduced), HOG with upsampling, in a child process."""
    shapes = [(MIN_SIDE, MIN_SIDE), (MIN_SIDE, MIN_SIDE * MAX_ASPECT), (MIN_SIDE * MAX_ASPECT, MIN_SIDE),
              (255, 255 * MAX_ASPECT), (200 * MAX_ASPECT, 200), (600, 600 * MAX_ASPECT)]
    code = ("import numpy as np\nfrom maskcycle.data import faces\n"
            f"for h, w in {shapes}:\n"
            "    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)\n"
            "    for up in (0, 1):\n        faces.detect(img, 'hog', upsample=up)\n"
            "    print(h, w, 'ok', flush=True)\n")
    p = run("-c", code)
    assert_no_signal(p)
    assert p.returncode == 0 and p.stdout.count("ok") == len(shapes), p.stderr[-2000:]


def test_detect_refuses_a_strip_array_before_dlib():
    with pytest.raises(ValueError, match="too thin to hold a face: 20000x20"):
        faces.detect(np.zeros((20, 20_000, 3), np.uint8))
    with pytest.raises(ValueError, match="too thin"):
        faces.aligned_descriptor(np.zeros((20, 20_000, 3), np.uint8))


def test_the_20000x20_png_no_longer_aborts_faces_or_translate(tmp_path, generator):
    """The issue's reproduction: a folder whose first file is a 20000x20 random PNG; before the
    guard `faces` and `translate` died with `malloc(): corrupted top size` (exit 134) at that file."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 20_000, 3), dtype=np.uint8)).save(folder / "a_pano.png")
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(folder / "b_small.png")
    p = run("-m", "maskcycle", "faces", "--input", str(folder), "--out", str(tmp_path / "faces.csv"))
    assert_no_signal(p)
    assert p.returncode == 1 and "a_pano.png: too thin to hold a face: 20000x20" in p.stderr
    assert (tmp_path / "faces.csv").read_text().count("\n") == 3  # header + both files
    p = run("-m", "maskcycle", "translate", "--checkpoint", str(generator), "--direction", "AB", "--input",
            str(folder), "--output", str(tmp_path / "out"), "--device", "cpu")
    assert_no_signal(p)
    assert "a_pano.png: unreadable" in p.stderr and "too thin to hold a face: 20000x20" in p.stderr
    assert "b_small.png: 0 face(s), no face" in p.stderr  # the file after it was processed


# --- the fuzz test --------------------------------------------------------------------------------
FUZZ_N = 240


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory):
    from skimage import data

    folder = tmp_path_factory.mktemp("fuzz") / "in"
    fuzz_images(folder, FUZZ_N, seed=24, astronaut=data.astronaut())
    return folder


def _lines_about(text: str, files: list[Path], prefix: str = "") -> dict[str, int]:
    return {f.name: sum(1 for line in text.splitlines() if line.startswith(prefix + str(f) + ":")) for f in files}


@pytest.mark.slow
def test_fuzz_faces_and_translate(fuzz_folder, tmp_path, generator):
    files = sorted(fuzz_folder.iterdir())
    p = run("-m", "maskcycle", "faces", "--input", str(fuzz_folder), "--out", str(tmp_path / "faces.csv"))
    assert_no_signal(p)
    assert p.returncode in (0, 1), p.stderr[-2000:]
    import csv

    rows = list(csv.DictReader((tmp_path / "faces.csv").open()))
    assert sorted(Path(r["path"]).name for r in rows) == [f.name for f in files]  # one row per file
    for mode in ([], ["--aligned"]):
        p = run("-m", "maskcycle", "translate", "--checkpoint", str(generator), "--direction", "AB", "--input",
                str(fuzz_folder), "--output", str(tmp_path / f"out{len(mode)}"), "--device", "cpu", *mode)
        assert_no_signal(p)
        assert p.returncode in (0, 1), p.stderr[-2000:]
        counts = _lines_about(p.stdout + p.stderr, files)
        assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
        written = {q.name for q in (tmp_path / f"out{len(mode)}").iterdir()}
        readable = [f for f in files if _readable(f)]
        if mode:  # aligned: every readable file is written
            assert written == {f.name for f in readable}


def _readable(path: Path) -> bool:
    try:
        read_rgb(path)
        return True
    except ImageReadError:
        return False


@pytest.mark.slow
def test_fuzz_curation_measures_and_survey_builder(fuzz_folder, tmp_path):
    files = sorted(fuzz_folder.iterdir())
    code = ("import sys\nfrom pathlib import Path\nfrom maskcycle.data import measures\n"
            "for p in sorted(Path(sys.argv[1]).iterdir()):\n"
            "    m = measures.measure(p, 64, 'hog')\n"
            "    print(f\"{p}: {m['error'] or 'measured'}\", flush=True)\n")
    p = run("-c", code, str(fuzz_folder))
    assert_no_signal(p)
    assert p.returncode == 0, p.stderr[-2000:]
    assert set(_lines_about(p.stdout, files).values()) == {1}
    good = make_image_folders(tmp_path / "good", n=8, size=32, splits=("test",))
    p = run("-m", "maskcycle", "survey", "build", "--out", str(tmp_path / "survey"), "--real-a", str(good / "testA"),
            "--real-b", str(good / "testB"), "--fakes-ab", str(fuzz_folder), "--fakes-ba", str(good / "testB"),
            "--allow-unpaired", "--n", "8", "--size", "32")
    assert_no_signal(p)
    assert p.returncode == 0, p.stderr[-2000:]
    unreadable = [f for f in files if not _readable(f)]
    counts = _lines_about(p.stderr, unreadable, "left out: ")
    assert unreadable and set(counts.values()) == {1}, counts  # each unreadable file named once, then left out
