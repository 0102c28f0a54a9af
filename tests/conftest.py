"""Shared fixtures: tiny image folders and tiny trial configs (CPU, seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskcycle.config import TrialConfig


def make_image_folders(root: Path, n: int = 6, size: int = 40, splits=("train", "test"), seed: int = 0) -> Path:
    """trainA/trainB/testA/testB with n smooth random images each (A reddish, B bluish)."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for domain, tint in (("A", (40, 0, 0)), ("B", (0, 0, 40))):
            folder = root / f"{split}{domain}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = rng.integers(0, 200, (size // 8, size // 8, 3)).astype(np.uint8)
                img = Image.fromarray(base).resize((size, size), Image.BILINEAR)
                arr = np.clip(np.asarray(img, dtype=np.int16) + tint, 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    return make_image_folders(tmp_path / "data")


def tiny_config(dataroot: Path | str, **changes) -> TrialConfig:
    base = dict(dataroot=str(dataroot), netG="resnet_6blocks", ngf=8, ndf=8, load_size=36, crop_size=32,
                n_epochs=1, n_epochs_decay=1, batch_size=2, pool_size=4, save_epoch_freq=1,
                save_latest_freq=4, log_freq=2, n_samples=2)
    base.update(changes)
    return TrialConfig(**base)


# --- evaluation: a tiny torch-fidelity feature extractor, so FID/KID run offline --------
TINY_EXTRACTOR = "maskcycle-test-tiny"


def _register_extractor(name: str, feature: str, features) -> str:
    """Register (once) a torch-fidelity extractor `name` whose one feature layer `feature` is
    `features(x)`, x a float N x 3 x H x W batch in [0, 1]; returns the registry name."""
    import torch
    from torch_fidelity import FeatureExtractorBase, register_feature_extractor
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    class TestExtractor(FeatureExtractorBase):
        def __init__(self, name, features_list, **kwargs):
            super().__init__(name, features_list)

        @staticmethod
        def get_provided_features_list():
            return (feature,)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return feature

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)

        def forward(self, x):
            assert x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3
            return (features(x.float() / 255),)

    if name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(name, TestExtractor)
    return name


def register_tiny_extractor() -> str:
    """A 12-feature extractor: per channel, the mean of each image quadrant. Stands in for
    Inception only in tests; returns its registry name."""
    import torch.nn.functional as F

    return _register_extractor(TINY_EXTRACTOR, "quadrants", lambda x: F.adaptive_avg_pool2d(x, 2).flatten(1))


TINY_DETAIL_EXTRACTOR = "maskcycle-test-detail"


def register_detail_extractor() -> str:
    """A small extractor that, unlike the quadrant means, sees fine detail (as Inception does): per
    channel and quadrant, the mean and the mean absolute difference between neighbouring pixels (24
    features). Tests of the FID protocol (JPEG vs PNG) use it."""
    import torch
    import torch.nn.functional as F

    def detail(x):
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs()
        return torch.cat([F.adaptive_avg_pool2d(x, 2).flatten(1), 10 * F.adaptive_avg_pool2d(dx, 2).flatten(1)], 1)

    return _register_extractor(TINY_DETAIL_EXTRACTOR, "detail", detail)


def make_paired_curated(root: Path, n_train: int = 6, n_test: int = 4, load_size: int = 36, raw_size: int = 48,
                        n_val: int = 0) -> Path:
    """A curated folder (trainA/B, testA/B at load_size, pairs_test.csv; with n_val also valA/B and
    pairs_val.csv) whose test and val images have known counterparts in `root/raw`: masked face N =
    unmasked face N with a light box drawn on."""
    rng = np.random.default_rng(5)
    curated = root / "curated"

    def face() -> np.ndarray:
        base = rng.integers(40, 200, (5, 5, 3)).astype(np.uint8)
        return np.asarray(Image.fromarray(base).resize((raw_size, raw_size), Image.BILINEAR))

    def masked(img: np.ndarray) -> np.ndarray:
        out = img.copy()
        out[raw_size // 2:raw_size * 7 // 8, raw_size // 5:raw_size * 4 // 5] = (215, 225, 245)
        return out

    def save(arr: np.ndarray, path: Path, size: int | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(arr)
        (img.resize((size, size), Image.BICUBIC) if size else img).save(path)

    rows = ["domain,file,id,counterpart_path"]
    for i in range(n_train):
        save(face(), curated / "trainA" / f"{i:04d}.png", load_size)
        save(masked(face()), curated / "trainB" / f"{i:04d}.png", load_size)
    for i in range(2 * n_test):
        f = face()
        save(f, root / "raw" / "unmasked" / f"{i:04d}.png")
        save(masked(f), root / "raw" / "masked" / f"{i:04d}.png")
        if i < n_test:  # test A ids 0..n-1, test B ids n..2n-1 (identity-disjoint, as curation)
            save(f, curated / "testA" / f"{i:04d}.png", load_size)
            rows.append(f"A,{i:04d}.png,{i},raw/masked/{i:04d}.png")
        else:
            save(masked(f), curated / "testB" / f"{i:04d}.png", load_size)
            rows.append(f"B,{i:04d}.png,{i},raw/unmasked/{i:04d}.png")
    (curated / "pairs_test.csv").write_text("\n".join(rows) + "\n")
    if n_val:
        rows = ["domain,file,id,counterpart_path"]
        for i in range(1000, 1000 + 2 * n_val):
            f = face()
            save(f, root / "raw" / "unmasked" / f"{i:04d}.png")
            save(masked(f), root / "raw" / "masked" / f"{i:04d}.png")
            domain = "A" if i < 1000 + n_val else "B"
            save(f if domain == "A" else masked(f), curated / f"val{domain}" / f"{i:04d}.png", load_size)
            other = "masked" if domain == "A" else "unmasked"
            rows.append(f"{domain},{i:04d}.png,{i},raw/{other}/{i:04d}.png")
        (curated / "pairs_val.csv").write_text("\n".join(rows) + "\n")
    return curated


def add_train_pairs(curated: Path, n: int = 4, size: int = 36) -> Path:
    """Give a curated folder what the curation writes for pix2pix: pairs_train.csv and
    pairs_trainA/B with the same file names (B = A with a light box drawn on)."""
    rng = np.random.default_rng(9)
    rows = ["id,file,source_A,source_B"]
    for i in range(n):
        base = rng.integers(40, 200, (5, 5, 3)).astype(np.uint8)
        a = np.asarray(Image.fromarray(base).resize((size, size), Image.BILINEAR))
        b = a.copy()
        b[size // 2:size * 7 // 8, size // 5:size * 4 // 5] = (215, 225, 245)
        for folder, img in (("pairs_trainA", a), ("pairs_trainB", b)):
            (curated / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(curated / folder / f"{100 + i:04d}.png")
        rows.append(f"{100 + i},{100 + i:04d}.png,raw/a/{i}.png,raw/b/{i}.png")
    (curated / "pairs_train.csv").write_text("\n".join(rows) + "\n")
    return curated


# One-way families at tiny sizes: CUT reads layers 0,4,8,12,16 of a 6-block ResNet (it has 22);
# pix2pix's unet_256 needs 256-px crops, so its nets are made narrow instead.
TINY_CUT = dict(model="cut", init_type="xavier", pool_size=0, num_patches=16, netF_nc=16)
TINY_PIX2PIX = dict(model="pix2pix", netG="unet_256", norm="batch", gan_mode="vanilla", pool_size=0,
                    use_dropout=True, ngf=4, ndf=4, load_size=256, crop_size=256)


def make_tiny_sweep(root: Path, trials: dict[str, dict] | None = None, n_val: int = 0) -> tuple[Path, Path]:
    """(sweep folder, curated folder): tiny trials trained for 2 epochs at 32 px on a paired
    curated set (with a val split of n_val a domain); `trials` maps a trial name to its TrialConfig
    changes."""
    from maskcycle.training.trainer import train

    curated = make_paired_curated(root, n_val=n_val)
    sweep = root / "sweep"
    trials = trials or {"bs2_lsgan": {}, "bs3_vanilla": {"batch_size": 3, "gan_mode": "vanilla"}}
    for name, changes in trials.items():
        cfg = tiny_config(curated, name=name, **changes)
        train(cfg, sweep / name, progress=False)
    return sweep, curated


# --- data: a small embedded demo set, drawn once per session -----------------------------
@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory) -> Path:
    """A 40-id demo set at 128 px (FFHQ-like and MaskedFace-Net-like trees, planted defects)."""
    from maskcycle.data.demo import generate

    return generate(tmp_path_factory.mktemp("demo") / "raw", n_ids=40, size=128, seed=3, workers=1, progress=False)


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    """A checkpoint of two untrained tiny generators (32 px), for commands that need one."""
    from maskcycle.models import checkpoints
    from maskcycle.models.networks import build_generator

    root = tmp_path_factory.mktemp("gen")
    cfg = tiny_config(root, crop_size=32)
    path = root / "g.pt"
    checkpoints.save_generators(path, cfg, build_generator(cfg), build_generator(cfg), 1)
    return path
