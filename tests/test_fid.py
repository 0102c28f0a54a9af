"""FID/KID: the Frechet distance against independent computations, the torch-fidelity path with a
tiny registered extractor, and the clear error when the Inception weights are missing."""

import numpy as np
import pytest
import scipy.linalg
import torch

from conftest import register_tiny_extractor
from maskcycle.evaluation import fid as fidlib


def _scipy_frechet(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_closed_form_and_scipy():
    rng = np.random.default_rng(0)
    # Diagonal Gaussians: FID = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    a, b = rng.uniform(0.5, 3, 5), rng.uniform(0.5, 3, 5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert fidlib.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)
    # General covariances: against scipy's matrix square root.
    m1, m2 = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(6), m2 @ m2.T + 0.1 * np.eye(6)
    assert fidlib.frechet_distance(mu1[:1].repeat(6), s1, mu2[:1].repeat(6), s2) == pytest.approx(
        _scipy_frechet(mu1[:1].repeat(6), s1, mu2[:1].repeat(6), s2), rel=1e-8)
    with pytest.raises(ValueError, match="shapes"):
        fidlib.frechet_distance(mu1, s1, mu2, s2)


def test_fid_of_gaussian_samples_matches_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 1.0, 0.0])
    s1, s2 = np.diag([1.0, 2.0, 0.5]), np.diag([2.0, 2.0, 1.0])
    x = rng.multivariate_normal(mu1, s1, size=200_000)
    y = rng.multivariate_normal(mu2, s2, size=200_000)
    exact = 0.25 + 1.0 + (1 - np.sqrt(2)) ** 2 + 0 + (np.sqrt(0.5) - 1) ** 2
    assert fidlib.fid_from_features(x, y) == pytest.approx(exact, abs=0.02)
    assert fidlib.fid_from_features(x, x) == pytest.approx(0.0, abs=1e-6)


def test_tiny_extractor_through_torch_fidelity_matches_calculate_metrics():
    import torch_fidelity

    name = register_tiny_extractor()
    rng = np.random.default_rng(2)
    imgs1 = rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
    imgs2 = np.clip(imgs1.astype(int) + rng.integers(-60, 80, imgs1.shape), 0, 255).astype(np.uint8)
    ext = fidlib.load_extractor(name)
    f1, f2 = fidlib.features(ext, imgs1, batch_size=7), fidlib.features(ext, imgs2)
    assert f1.shape == (20, 12)
    ours = fidlib.fid_from_features(f1, f2)
    kid, kid_std = fidlib.kid_from_features(f1, f2)

    class Set(torch.utils.data.Dataset):
        def __init__(self, a):
            self.a = torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()

        def __len__(self):
            return len(self.a)

        def __getitem__(self, i):
            return self.a[i]

    ref = torch_fidelity.calculate_metrics(input1=Set(imgs1), input2=Set(imgs2), fid=True, kid=True, cuda=False,
                                           feature_extractor=name, kid_subset_size=20, save_cpu_ram=True,
                                           cache=False, verbose=False)
    assert ours > 0.01
    assert ours == pytest.approx(ref[torch_fidelity.KEY_METRIC_FID], rel=1e-4)
    assert kid == pytest.approx(ref[torch_fidelity.KEY_METRIC_KID_MEAN], rel=1e-3, abs=1e-6)
    assert fidlib.fid_from_features(f1, f1) == pytest.approx(0.0, abs=1e-8)


def test_missing_inception_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(fidlib.WEIGHTS_ENV, raising=False)
    with pytest.raises(fidlib.InceptionWeightsMissing) as err:
        fidlib.load_extractor(fidlib.INCEPTION, download=False)
    msg = str(err.value)
    assert fidlib.INCEPTION_WEIGHTS_FILE in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg  # where to put it
    assert "github.com/toshas/torch-fidelity/releases" in msg  # where it comes from
    # An explicit path or the environment variable that does not exist is named.
    with pytest.raises(fidlib.InceptionWeightsMissing, match="nowhere.pth"):
        fidlib.find_inception_weights(tmp_path / "nowhere.pth")
    monkeypatch.setenv(fidlib.WEIGHTS_ENV, str(tmp_path / "env.pth"))
    with pytest.raises(fidlib.InceptionWeightsMissing, match="env.pth"):
        fidlib.find_inception_weights()


def test_failed_download_is_the_same_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(fidlib.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(fidlib, "INCEPTION_WEIGHTS_URL", "http://127.0.0.1:9/" + fidlib.INCEPTION_WEIGHTS_FILE)
    with pytest.raises(fidlib.InceptionWeightsMissing, match="download failed"):
        fidlib.find_inception_weights(download=True)
    assert not [p for p in (tmp_path / "torch").rglob("*") if p.is_file()]  # no partial download left


def test_weights_found_in_hub_cache_are_loaded_into_inception(tmp_path, monkeypatch):
    """The real loading path: a file in the hub cache is what torch-fidelity's Inception loads.
    A file with the right name but wrong contents must fail loudly, not fall back to anything."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(fidlib.WEIGHTS_ENV, raising=False)
    target = fidlib.hub_weights_path()
    target.parent.mkdir(parents=True)
    torch.save({"not": torch.zeros(1)}, target)
    assert fidlib.find_inception_weights(download=False) == target
    with pytest.raises(RuntimeError, match="state_dict"):
        fidlib.load_extractor(fidlib.INCEPTION, download=False)
