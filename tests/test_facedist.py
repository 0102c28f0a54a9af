"""Face-feature distances (FD_face, KD_face), identity, and `evaluate --fakes-ab/--fakes-ba` (issue 12)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
from PIL import Image

from maskcycle.cli import main
from maskcycle.data.images import ImageReadError, read_rgb
from maskcycle.evaluation import facedist


def test_fd_and_kd_match_hand_computation():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(0.5, 1.3, size=(6, 3))
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    fd = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)

    def k(a, b):  # KID's polynomial kernel
        return (a @ b.T / a.shape[1] + 1) ** 3

    n = len(x)
    off = ~np.eye(n, dtype=bool)
    kd = k(x, x)[off].mean() + k(y, y)[off].mean() - 2 * k(x, y).mean()  # unbiased MMD^2, all samples
    got = facedist.distribution_distances(x, y)
    assert got["fd"] == pytest.approx(fd, rel=1e-6)
    assert got["kd"] == pytest.approx(kd, rel=1e-6)


def test_identity_rate_distance_and_chance():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(8, 128)) * 10  # far apart: mismatched pairs are never "the same person"
    step = rng.normal(size=(8, 128))
    step /= np.linalg.norm(step, axis=1, keepdims=True)
    fake = ref + step * np.array([0.1, 0.2, 0.3, 0.4, 0.7, 0.8, 0.9, 1.0])[:, None]
    got = facedist.identity(fake, ref)
    assert got["n"] == 8 and got["rate"] == 0.5 and got["dist"] == pytest.approx(0.55)
    assert got["rate_lo"] < 0.5 < got["rate_hi"] and got["dist_lo"] <= 0.55 <= got["dist_hi"]
    assert got["chance_rate"] == 0.0 and got["chance_dist"] > 10


def _good_images(folder: Path, n: int, out: Path, skip: int = 0) -> Path:
    """Copy n decodable images (the demo plants broken ones) from folder to out."""
    out.mkdir(parents=True)
    kept = 0
    for path in sorted(folder.iterdir())[skip:]:
        try:
            read_rgb(path)
        except ImageReadError:
            continue
        shutil.copy(path, out / path.name)
        kept += 1
        if kept == n:
            break
    return out


def test_evaluate_external_fakes_with_and_without_pairs(demo_raw, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no Inception weights: FID unavailable
    monkeypatch.delenv("MASKCYCLE_INCEPTION_WEIGHTS", raising=False)
    unmasked = demo_raw / "ffhq" / "images1024x1024" / "00000"
    masked = demo_raw / "maskedfacenet" / "CMFD" / "00000"
    real_a = _good_images(unmasked, 6, tmp_path / "realA")
    real_b = _good_images(masked, 6, tmp_path / "realB")
    fakes_ba = _good_images(unmasked, 6, tmp_path / "fakesBA")  # the real set itself: distance ~0
    fakes_ab = _good_images(unmasked, 6, tmp_path / "fakesAB", skip=10)  # unmasked faces as "masked" fakes
    common = ["evaluate", "--fakes-ab", str(fakes_ab), "--fakes-ba", str(fakes_ba), "--real-a", str(real_a),
              "--real-b", str(real_b), "--no-download", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    m = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert abs(m["fd_face_BA"]) < 1e-6 and m["fd_face_AB"] > 1e-3
    assert m["kd_face_AB"] > m["kd_face_BA"]
    assert "id_rate_AB" not in m and "fid_AB" not in m and m["fid_unavailable_reason"]

    pairs = tmp_path / "pairs_ba.csv"  # each fake B->A with the photo it must look like (a copy of it here)
    pairs.write_text("fake,real\n" + "".join(f"{p.name},realA/{p.name}\n" for p in sorted(fakes_ba.iterdir())))
    assert main([*common, "--out", str(tmp_path / "same"), "--pairs-ba", str(pairs)]) == 2  # a "fake" = its real
    assert "line 2: fake '00000.png' and real 'realA/00000.png' are the same bytes" in capsys.readouterr().err
    for p in fakes_ba.iterdir():  # one pixel changed: a fake that still shows the same person
        img = np.array(Image.open(p).convert("RGB"))
        img[0, 0] ^= 1
        Image.fromarray(img).save(p)
    assert main([*common, "--out", str(tmp_path / "paired"), "--pairs-ba", str(pairs)]) == 0
    m = json.loads((tmp_path / "paired" / "metrics.json").read_text())
    assert m["id_rate_BA"] == 1.0 and m["id_dist_BA"] < 0.05 and m["id_pairs_BA"] == 6
    assert "id_rate_AB" not in m

    # one direction alone; an output folder inside an input is refused
    assert main(["evaluate", "--fakes-ab", str(fakes_ab), "--real-b", str(real_b), "--out",
                 str(tmp_path / "ab"), "--no-download"]) == 0
    assert "fd_face_BA" not in json.loads((tmp_path / "ab" / "metrics.json").read_text())
    assert main(["evaluate", "--fakes-ab", str(fakes_ab), "--real-b", str(real_b), "--out",
                 str(fakes_ab / "m"), "--no-download"]) == 2
    assert "input folder" in capsys.readouterr().err
