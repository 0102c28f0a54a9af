"""Face-feature distances and identity, offline: dlib's 128-D face descriptors of aligned crops.

- FD_face / KD_face: the Frechet distance and KID's unbiased polynomial-kernel MMD (torch-fidelity's
  estimator, `fid.kid_from_features`) between the descriptor sets of fakes and real images:
  fd_face_AB = D(G_AB(test A), test B), fd_face_BA = D(G_BA(test B), test A). No weights to
  download, so always computed; FID/KID on Inception stay the study's comparable numbers.
- Identity: for known pairs (a fake and the photo it must still look like: its own input, or its
  true counterpart) the descriptor distance and the share of pairs under dlib's 0.6 threshold
  (Wilson 95 % interval; median distance with a bootstrap interval). The same measured on
  mismatched pairs (fake i against reference i + 1) is the chance level beside it.

A crop where the HOG detector finds no face is described at the fixed FFHQ-aligned face box instead
(`data.faces.aligned_descriptor`); how many did so is recorded (`face_fallback_*`).
"""

from __future__ import annotations

import math

import numpy as np

from maskcycle.data import faces as facelib
from maskcycle.evaluation import fid as fidlib

VERSION = "face1"  # part of the evaluation's cache key: bump when these numbers change meaning


def descriptors(images, progress: bool = False, desc: str = "descriptors") -> tuple[np.ndarray, int]:
    """(N x 128 descriptors, number of crops described at the fixed aligned box) of aligned crops."""
    import tqdm

    out, missed = [], 0
    for img in tqdm.tqdm(images, disable=not progress, desc=desc, leave=False):
        d, found = facelib.aligned_descriptor(np.asarray(img))
        out.append(d)
        missed += not found
    return np.stack(out) if out else np.zeros((0, 128)), missed


def distribution_distances(fake: np.ndarray, real: np.ndarray) -> dict:
    """{"fd", "kd", "kd_std"} between two descriptor sets (each at least 2)."""
    kd, kd_std = fidlib.kid_from_features(fake, real)
    return {"fd": fidlib.fid_from_features(fake, real), "kd": kd, "kd_std": kd_std}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of k successes in n."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def identity(fake: np.ndarray, ref: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """Identity kept between fake[i] and ref[i]: rate under 0.6 (Wilson interval), median distance
    (bootstrap 95 % interval), and both on mismatched pairs (fake[i] vs ref[i + 1]) as chance."""
    fake, ref = np.asarray(fake, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if fake.shape != ref.shape or len(fake) == 0:
        raise ValueError(f"identity needs matched, non-empty descriptor sets, got {fake.shape} and {ref.shape}")
    dist = np.linalg.norm(fake - ref, axis=1)
    k = int((dist < facelib.SAME_PERSON).sum())
    lo, hi = wilson(k, len(dist))
    rng = np.random.default_rng(seed)
    boot = np.median(dist[rng.integers(0, len(dist), (n_boot, len(dist)))], axis=1)
    out = {"n": len(dist), "rate": k / len(dist), "rate_lo": lo, "rate_hi": hi, "dist": float(np.median(dist)),
           "dist_lo": float(np.percentile(boot, 2.5)), "dist_hi": float(np.percentile(boot, 97.5)),
           "chance_rate": None, "chance_dist": None}
    if len(dist) >= 2:
        chance = np.linalg.norm(fake - np.roll(ref, -1, axis=0), axis=1)
        out.update(chance_rate=float((chance < facelib.SAME_PERSON).mean()), chance_dist=float(np.median(chance)))
    return out


def flat(direction: str, dists: dict | None, ident: dict | None, ref_kind: str | None = None) -> dict:
    """Metric names of one direction: fd_face_AB, kd_face_AB, id_rate_AB, id_dist_AB, ..."""
    d = direction
    out = {}
    if dists is not None:
        out.update({f"fd_face_{d}": dists["fd"], f"kd_face_{d}": dists["kd"], f"kd_face_{d}_std": dists["kd_std"]})
    if ident is not None:
        out.update({f"id_rate_{d}": ident["rate"], f"id_rate_{d}_lo": ident["rate_lo"],
                    f"id_rate_{d}_hi": ident["rate_hi"], f"id_dist_{d}": ident["dist"],
                    f"id_dist_{d}_lo": ident["dist_lo"], f"id_dist_{d}_hi": ident["dist_hi"],
                    f"id_chance_rate_{d}": ident["chance_rate"], f"id_chance_dist_{d}": ident["chance_dist"],
                    f"id_pairs_{d}": ident["n"], f"id_reference_{d}": ref_kind})
    return out
