"""evaluation.fid_protocol: resize modes, file formats, and that matched formats remove the JPEG/PNG
mismatch (a small detail-sensitive extractor stands in for Inception, whose weights are offline)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import register_detail_extractor
from maskcycle.evaluation import evaluate
from maskcycle.evaluation import fid_protocol as proto


def faces(n: int, seed: int, size: int = 48) -> np.ndarray:
    """Smooth random images with fine texture (so that JPEG has detail to lose)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = np.asarray(Image.fromarray(rng.integers(30, 220, (6, 6, 3)).astype(np.uint8)).resize((size, size),
                                                                                                  Image.BICUBIC))
        noise = rng.normal(0, 12, (size, size, 3))
        out.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return np.stack(out)


def save_all(images: np.ndarray, folder, fmt: str, quality: int = 30):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(images):
        p = folder / f"{i:03d}.{'jpg' if fmt == 'JPEG' else 'png'}"
        Image.fromarray(im).save(p, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
        paths.append(p)
    return paths


def test_jpeg_quality_and_set_formats(tmp_path):
    imgs = faces(3, 0)
    jpgs = save_all(imgs, tmp_path / "j", "JPEG", quality=42)
    pngs = save_all(imgs, tmp_path / "p", "PNG")
    assert proto.jpeg_quality(jpgs[0]) == 42 and proto.jpeg_quality(pngs[0]) is None
    assert proto.file_format(jpgs) == {"format": "JPEG", "jpeg_quality": 42}
    assert proto.file_format(pngs) == {"format": "PNG", "jpeg_quality": None}
    assert proto.file_format(jpgs[:1] + pngs[:2])["format"] == "mixed: JPEG 1, PNG 2"


def test_resize_modes():
    imgs = faces(2, 1, size=64)
    assert proto.resize_for_inception(imgs, "legacy") is imgs
    clean = proto.resize_for_inception(imgs, "clean")
    assert clean.shape == (2, 299, 299, 3) and clean.dtype == np.uint8
    with pytest.raises(ValueError, match="fid_resize 'bilinear'"):
        proto.resize_for_inception(imgs, "bilinear")


def test_reencoding_changes_fid_and_matched_formats_remove_the_mismatch(tmp_path):
    """Real set stored as JPEG (q 30), fakes lossless from the same distribution: scored as they
    are, FID measures compression; the pipeline re-encodes the fakes at the real set's quality."""
    from maskcycle.evaluation import fid as fidlib

    name = register_detail_extractor()
    scorer = evaluate.Scorer(fidlib.load_extractor(name), None)
    real_paths = save_all(faces(60, 2), tmp_path / "real", "JPEG", quality=30)
    real = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in real_paths])
    real_format = proto.file_format(real_paths)
    fakes = faces(60, 3)  # same distribution as the reals before compression
    f_real = scorer._features(real)
    mismatched = fidlib.fid_from_features(scorer._features(fakes), f_real)
    as_jpeg = fidlib.fid_from_features(scorer._features(proto.jpeg_roundtrip(fakes, 30)), f_real)
    assert mismatched > 3 * as_jpeg  # re-encoding changes FID: the mismatch dominates it
    scored = scorer.score(fakes, ("real",), real, real_format)
    assert scored["FID"] == pytest.approx(as_jpeg, rel=1e-9)  # the pipeline compares like with like
    p = scored["protocol"]
    assert p["resize"] == "legacy" and p["fake"]["format"] == p["real"]["format"] == "JPEG"
    assert p["fake"]["jpeg_quality"] == p["real"]["jpeg_quality"] == 30
    assert p["fake"]["n"] == p["real"]["n"] == 60 and p["fake"]["size"] == p["real"]["size"] == [48, 48]
    # a PNG real set leaves lossless fakes untouched
    png = scorer.score(fakes, ("png",), faces(60, 2), {"format": "PNG", "jpeg_quality": None})
    assert png["protocol"]["fake"]["format"] == "PNG"
    # clean resizing is its own protocol and changes the number
    clean = evaluate.Scorer(scorer.extractor, None, resize="clean").score(fakes, ("real",), real, real_format)
    assert clean["protocol"]["resize"] == "clean" and clean["FID"] != pytest.approx(scored["FID"], rel=1e-6)


def test_detail_gives_interval_reference_size_and_bias_curve():
    from maskcycle.evaluation import fid as fidlib

    rng = np.random.default_rng(0)
    f_fake, f_real = rng.normal(0.2, 1, (120, 6)), rng.normal(0, 1, (150, 6))
    d = fidlib.fid_detail(f_fake, f_real, ref_n=100, n_boot=60)
    full = fidlib.fid_from_features(f_fake, f_real)
    assert d["FID_lo"] < full < d["FID_hi"] and d["FID_se"] > 0
    assert d["FID_ref"] is not None and fidlib.fid_detail(f_fake, f_real, ref_n=500, n_boot=5)["FID_ref"] is None
    ns = [c["n"] for c in d["FID_by_n"]]
    assert ns == [10, 25, 50, 100, 120]
    assert d["FID_by_n"][0]["mean"] > d["FID_by_n"][-1]["mean"]  # fewer samples, higher FID
