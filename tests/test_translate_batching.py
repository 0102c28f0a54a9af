"""translate_array: batched inference, the automatic batch size and the out-of-memory fallback."""

import numpy as np
import pytest
import torch

from maskcycle.config import TrialConfig
from maskcycle.evaluation import translate
from maskcycle.models.cyclegan import build as build_cyclegan

TINY = dict(netG="resnet_6blocks", ngf=8, ndf=8, crop_size=32, load_size=36, device="cpu")


def _images(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_batches_give_the_same_images_as_one_by_one():
    cfg = TrialConfig(**TINY)
    G = build_cyclegan(cfg).G_AB
    images = _images(5)
    one = translate.translate_array(G, images, cfg, batch_size=1)
    assert one.shape == images.shape and one.dtype == np.uint8
    for bs in (2, 0, None):  # 0 / None: the automatic size (16 on CPU)
        # instance norm is per image; only the conv kernels' summation order differs with batch
        assert np.abs(translate.translate_array(G, images, cfg, batch_size=bs).astype(int) - one).max() <= 1


def test_out_of_memory_halves_the_batch(monkeypatch):
    cfg = TrialConfig(**TINY)
    G = build_cyclegan(cfg).G_AB
    real = translate.translate_batch
    seen = []

    def small_memory(G, x, cfg):
        seen.append(len(x))
        if len(x) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(G, x, cfg)

    monkeypatch.setattr(translate, "translate_batch", small_memory)
    out = translate.translate_array(G, _images(7), cfg, batch_size=8)
    assert out.shape == (7, 32, 32, 3)
    assert seen == [7, 4, 2, 2, 2, 1]  # 8 -> 4 -> 2, then batches of 2 and the remainder

    def no_memory(G, x, cfg):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(translate, "translate_batch", no_memory)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        translate.translate_array(G, _images(2), cfg, batch_size=4)
