"""FID and KID through torch-fidelity's feature extractors, with the real sets' features reused.

FID uses torch-fidelity's standard Inception (`inception-v3-compat`, the TF-ported 2015 weights
every published FID uses). Its weights file is looked up, in order: an explicit path, the
environment variable MASKCYCLE_INCEPTION_WEIGHTS, the torch hub cache
(`$TORCH_HOME/hub/checkpoints/`), and, when allowed, one download from torch-fidelity's GitHub
release into that cache. Without it `InceptionWeightsMissing` says which file, where to put it and
where it comes from; no other network is ever put in its place.

How images reach the extractor (resize, file format) is `fid_protocol`'s job. Features are
extracted once per image set (`features`), so the real test sets are embedded once
per sweep and each trial or epoch only embeds its fakes. The Frechet distance is computed here
(`frechet_distance`); KID is torch-fidelity's own estimator on the same features.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

INCEPTION = "inception-v3-compat"
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_WEIGHTS_FILE
)
WEIGHTS_ENV = "MASKCYCLE_INCEPTION_WEIGHTS"
INCEPTION_HASH_PREFIX = INCEPTION_WEIGHTS_FILE.removesuffix(".pth").rsplit("-", 1)[-1]  # torch.hub's naming rule
KID_SUBSET_SIZE = 1000  # torch-fidelity's default; smaller test sets use all their samples
FID_REF_N = 1000  # FID_<dir>_ref: FID at this many images of each set, comparable across test-set sizes
FID_N_BOOT = 100  # bootstrap replicates of FID's within-run interval (each one Frechet distance)
CURVE_SIZES = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)  # FID by sample count (and the full sets)
PROTOCOL_VERSION = "p1"  # part of the evaluation's cache key: bump when the protocol's numbers change


class InceptionWeightsMissing(FileNotFoundError):
    """The Inception weights file is not here and could not be fetched; the message says what to do."""


def hub_weights_path() -> Path:
    """Where torch.hub (and so torch-fidelity) keeps the Inception weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def _missing(why: str) -> InceptionWeightsMissing:
    return InceptionWeightsMissing(
        f"FID/KID need torch-fidelity's Inception weights file {INCEPTION_WEIGHTS_FILE} ({why}). "
        f"Put it at {hub_weights_path()} (the torch hub cache, $TORCH_HOME/hub/checkpoints/), or pass its "
        f"path (--inception-weights / inception_weights) or set {WEIGHTS_ENV}. It comes from torch-fidelity's "
        f"GitHub release: {INCEPTION_WEIGHTS_URL} (torch-fidelity downloads it there once when online)."
    )


def find_inception_weights(path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The Inception weights file: `path`, else $MASKCYCLE_INCEPTION_WEIGHTS, else the torch hub cache
    (downloaded there once if `download` and online). Raises InceptionWeightsMissing otherwise."""
    for given, source in ((path, "the given path"), (os.environ.get(WEIGHTS_ENV) or None, WEIGHTS_ENV)):
        if given is not None:
            given = Path(given)
            if not given.is_file():
                raise _missing(f"{source} {given} does not exist")
            return given
    cached = hub_weights_path()
    if cached.is_file():
        return cached
    if not download:
        raise _missing(f"not in the torch hub cache {cached.parent} and downloading is off")
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:  # torch.hub writes a temp file beside the target, checks the sha256 prefix, then renames
        torch.hub.download_url_to_file(INCEPTION_WEIGHTS_URL, str(cached), hash_prefix=INCEPTION_HASH_PREFIX,
                                       progress=False)
    except (OSError, RuntimeError) as exc:  # URLError and timeouts are OSErrors; a bad hash a RuntimeError
        raise _missing(f"not in the torch hub cache and the download failed: {exc}") from None
    return cached


@dataclasses.dataclass
class FeatureExtractor:
    """A torch-fidelity feature extractor and the layer FID/KID use (2048-d pool for Inception)."""
    name: str
    layer: str
    net: torch.nn.Module
    weights: str | None  # the weights file, recorded with the results
    device: torch.device


def load_extractor(name: str = INCEPTION, weights: str | os.PathLike | None = None, download: bool = True,
                   device: torch.device | str = "cpu") -> FeatureExtractor:
    """Build a registered torch-fidelity extractor. For Inception the weights file must be found
    (see `find_inception_weights`); other registered names (e.g. a test's tiny extractor) are built
    as torch-fidelity builds them, with `weights` passed through if given."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
    from torch_fidelity.utils import create_feature_extractor

    if name not in FEATURE_EXTRACTORS_REGISTRY:
        raise ValueError(f"feature extractor {name!r} is not registered with torch-fidelity "
                         f"(known: {', '.join(sorted(FEATURE_EXTRACTORS_REGISTRY))})")
    if name == INCEPTION:
        weights = find_inception_weights(weights, download)
    device = torch.device(device)
    layer = FEATURE_EXTRACTORS_REGISTRY[name].get_default_feature_layer_for_metric("fid")
    kwargs = {"feature_extractor_weights_path": str(weights)} if weights is not None else {}
    net = create_feature_extractor(name, [layer], cuda=False, verbose=False, **kwargs).to(device)
    return FeatureExtractor(name, layer, net, str(weights) if weights is not None else None, device)


@torch.no_grad()
def features(extractor: FeatureExtractor, images_uint8: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """N x D float64 features of NxHxWx3 uint8 images (torch-fidelity takes uint8 Nx3xHxW)."""
    if len(images_uint8) == 0:
        raise ValueError("no images to embed")
    out = []
    for start in range(0, len(images_uint8), batch_size):
        batch = torch.from_numpy(np.array(images_uint8[start:start + batch_size]))  # writable copy
        batch = batch.permute(0, 3, 1, 2).contiguous().to(extractor.device)
        (feats,) = extractor.net(batch)
        out.append(feats.double().cpu().numpy())
    return np.concatenate(out)


def statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, as torch-fidelity and TTUR) of N x D features."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or len(feats) < 2:
        raise ValueError(f"FID needs at least 2 samples of N x D features, got shape {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)) between two Gaussians.

    tr((S1 S2)^(1/2)) = sum of sqrt of the eigenvalues of S1^(1/2) S2 S1^(1/2), which is symmetric
    PSD, so symmetric eigen-solvers suffice (no complex sqrtm, no rank-deficiency blow-up when
    there are fewer samples than feature dimensions)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"shapes do not match: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root1 @ sigma2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    return frechet_distance(*statistics(f1), *statistics(f2))


def kid_from_features(f1: np.ndarray, f2: np.ndarray, subsets: int = 100, seed: int = 2020) -> tuple[float, float]:
    """torch-fidelity's KID (polynomial kernel, unbiased MMD^2 over random subsets): (mean, std).
    The subset size is torch-fidelity's 1000, or the smaller set's size when fewer."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(KID_SUBSET_SIZE, len(f1), len(f2))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(f1)} and {len(f2)}")
    out = kid_features_to_metric(torch.from_numpy(np.asarray(f1)), torch.from_numpy(np.asarray(f2)),
                                 kid_subsets=subsets, kid_subset_size=size, rng_seed=seed, verbose=False)
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


def fid_detail(f_fake: np.ndarray, f_real: np.ndarray, ref_n: int = FID_REF_N, n_boot: int = FID_N_BOOT,
               seed: int = 0) -> dict:
    """FID's within-run interval from resampling the images of both sets (percentile bootstrap:
    "FID_lo", "FID_hi", "FID_se"), FID at `ref_n` images of each set ("FID_ref", None when a set is
    smaller) and FID by sample count ("FID_by_n": [{n, mean, sd, repeats}], the full sets last)."""
    from maskcycle.evaluation import statistics

    boot = statistics.bootstrap_two_sample(fid_from_features, f_fake, f_real, n_boot=n_boot, seed=seed)
    n_max = min(len(f_fake), len(f_real))
    sizes = [n for n in CURVE_SIZES if n < n_max] + [n_max]
    return {"FID_lo": boot["lo"], "FID_hi": boot["hi"], "FID_se": boot["se"],
            "FID_ref": statistics.at_reference_size(fid_from_features, f_fake, f_real, ref_n, seed=seed),
            "FID_by_n": statistics.subsample_curve(fid_from_features, f_fake, f_real, sizes, repeats=3, seed=seed)}
