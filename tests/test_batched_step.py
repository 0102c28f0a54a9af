"""The batched step (`batched_passes`): 3 generator calls and one call per D step on
concatenated batches, against the separate passes of the reference order (fp32, CPU)."""

import copy

import pytest
import torch

from maskcycle.config import TrialConfig
from maskcycle.models import cyclegan
from maskcycle.models.cyclegan import build as build_cyclegan
from maskcycle.models.cyclegan import generator_loss, train_step, uses_batched_passes

TINY = dict(netG="resnet_6blocks", ngf=8, ndf=8, crop_size=32, load_size=36, pool_size=4, device="cpu")


def _images(batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(batch, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _generator_grads(cfg: TrialConfig, A, B):
    m = build_cyclegan(cfg, fused=False)
    loss_G, parts, _ = generator_loss(m, A, B)
    loss_G.backward()
    grads = torch.cat([p.grad.flatten() for net in (m.G_AB, m.G_BA) for p in net.parameters()])
    return grads, {k: float(v.detach()) for k, v in parts.items()}


def _count_calls(m) -> dict:
    calls = {name: 0 for name in cyclegan.NETWORK_NAMES}
    for name, net in m.networks().items():
        net.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    return calls


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("identity", [0.5, 0.0])
def test_batched_generator_gradients_equal_separate(batch, identity):
    A, B = _images(batch)
    cfg = TrialConfig(**TINY, lambda_identity=identity)
    g_ref, parts_ref = _generator_grads(cfg, A, B)
    g, parts = _generator_grads(cfg.replace(batched_passes=True), A, B)
    for k in parts_ref:
        assert parts[k] == pytest.approx(parts_ref[k], rel=1e-5, abs=1e-7), k
    assert _rel(g, g_ref) < 1e-5  # measured ~1e-7: only the summation order of conv kernels differs


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("gan_mode", ["lsgan", "vanilla", "wgangp"])
def test_batched_steps_equal_separate_steps(batch, gan_mode):
    """Three whole steps (pools filling and drawing, both optimisers) stay together: each
    network's change from its initial weights agrees to rounding. SGD at lr 2e-4: Adam turns the
    rounding noise of exactly-zero gradients (conv biases before instance norm) into +-lr
    updates, and a large SGD lr (0.01) makes the tiny net chaotic within 2 steps."""
    cfg = TrialConfig(**TINY, gan_mode=gan_mode, optimizer="sgd")
    sep, bat = build_cyclegan(cfg, fused=False), build_cyclegan(cfg.replace(batched_passes=True), fused=False)
    flat = lambda net: torch.cat([p.detach().flatten() for p in net.parameters()])  # noqa: E731
    w0 = {name: flat(net) for name, net in sep.networks().items()}
    for step in range(3):
        A, B = _images(batch, seed=step)
        ls, lb = train_step(sep, A, B), train_step(bat, A, B)
        for k in ls:
            assert float(lb[k]) == pytest.approx(float(ls[k]), rel=1e-4, abs=1e-6), (step, k)
    for name, net in sep.networks().items():
        delta_ref, delta = flat(net) - w0[name], flat(bat.networks()[name]) - w0[name]
        assert _rel(delta, delta_ref) < 1e-4, name  # measured 4e-6 to 8e-6 at batch 1


def test_discriminator_loss_is_the_mean_of_each_part():
    """One D call on [real; fake] must still give 0.5 x (mean over real + mean over fake)."""
    cfg = TrialConfig(**TINY, batched_passes=True)
    m = build_cyclegan(cfg)
    real, fake = _images(2, seed=5)
    fake = fake[:1]  # unequal parts: one mean over the concatenation would differ
    got = cyclegan._discriminator_loss(m, m.D_A, real, fake)
    p_real, p_fake = m.D_A(real), m.D_A(fake)
    want = 0.5 * ((p_real - 1).pow(2).mean() + p_fake.pow(2).mean())
    assert float(got) == pytest.approx(float(want), rel=1e-5)


def test_the_batched_step_makes_three_generator_calls_and_one_per_discriminator():
    A, B = _images(1)
    calls = {}
    for batched in (False, True):
        m = build_cyclegan(TrialConfig(**TINY, batched_passes=batched))
        counts = _count_calls(m)
        train_step(m, A, B)
        calls[batched] = counts
    assert calls[False] == {"G_AB": 3, "G_BA": 3, "D_A": 3, "D_B": 3}  # D: adversarial, real, fake
    assert calls[True] == {"G_AB": 2, "G_BA": 1, "D_A": 2, "D_B": 2}  # 3 G calls; D: adversarial, [real; fake]


def test_batch_norm_keeps_separate_passes():
    """Batch statistics over [A; B] would differ from two calls: batched_passes is ignored, bit for bit."""
    cfg = TrialConfig(**TINY, norm="batch")
    assert not uses_batched_passes(cfg.replace(batched_passes=True))
    a, b = build_cyclegan(cfg, fused=False), build_cyclegan(cfg.replace(batched_passes=True), fused=False)
    for step in range(2):
        A, B = _images(2, seed=step)
        la, lb = train_step(a, A, B), train_step(b, A, B)
        assert all(torch.equal(la[k], lb[k]) for k in la)
    for name, net in a.networks().items():
        for (k, x), y in zip(net.state_dict().items(), b.networks()[name].state_dict().values()):
            assert torch.equal(x, y), (name, k)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_batched_channels_last_gradients_at_batch1(precision):
    """The platform trap (instance norm + channels_last at batch 1): the batched calls run at
    batch 2 and 3, G_AB(fake_A) and the adversarial D calls still at 1 (the safe norm)."""
    A, B = _images(1, seed=1)
    ref, _ = _generator_grads(TrialConfig(**TINY, precision=precision), A, B)
    got, _ = _generator_grads(TrialConfig(**TINY, precision=precision, channels_last=True, batched_passes=True), A, B)
    # fp32: summation order only (measured ~1e-3, from the batch-norm kernel at batch 1); bf16:
    # channels_last + other batch shapes round differently (measured ~1e-2); the bug gives > 1
    assert _rel(got, ref) < (2e-2 if precision == "fp32" else 0.1)


@pytest.mark.parametrize("changes", [dict(), dict(precision="bf16", channels_last=True)])
def test_batched_step_resumes_exactly(changes):
    cfg = TrialConfig(**TINY, batched_passes=True, **changes)
    batches = [_images(1, seed=20 + i) for i in range(4)]
    whole = build_cyclegan(cfg)
    for A, B in batches:
        train_step(whole, A, B)
    first = build_cyclegan(cfg)
    for A, B in batches[:2]:
        train_step(first, A, B)
    resumed = build_cyclegan(cfg)
    resumed.load_state_dict(copy.deepcopy(first.state_dict()))
    for A, B in batches[2:]:
        train_step(resumed, A, B)
    for name, net in whole.networks().items():
        for (k, a), b in zip(net.state_dict().items(), resumed.networks()[name].state_dict().values()):
            assert torch.equal(a, b), (name, k)
