import pytest
import torch

from maskcycle.config import TrialConfig
from maskcycle.models import build_discriminator, build_generator, count_parameters

# The reference CycleGAN's printed parameter counts (3 channels, ngf = ndf = 64).
G_COUNTS = [("resnet_9blocks", "instance", 11_378_179), ("resnet_6blocks", "instance", 7_837_699),
            ("unet_128", "instance", 41_825_667), ("unet_256", "instance", 54_409_603),
            ("resnet_9blocks", "batch", 11_383_427)]
D_COUNTS = [("basic", "instance", 2_764_737), ("basic", "batch", 2_765_633), ("pixel", "instance", 8_705)]


@pytest.mark.parametrize("netG, norm, count", G_COUNTS)
def test_generator_parameter_counts(netG, norm, count):
    assert count_parameters(build_generator(TrialConfig(netG=netG, norm=norm))) == count


@pytest.mark.parametrize("netD, norm, count", D_COUNTS)
def test_discriminator_parameter_counts(netD, norm, count):
    assert count_parameters(build_discriminator(TrialConfig(netD=netD, norm=norm))) == count


# U-Nets halve the size 7 (unet_128) or 8 (unet_256) times, so they need multiples of 128 / 256.
@pytest.mark.parametrize("netG, sizes", [("resnet_9blocks", (64, 256)), ("resnet_6blocks", (64, 256)),
                                         ("unet_128", (128, 256)), ("unet_256", (256,))])
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_generator_shapes(netG, sizes, norm):
    G = build_generator(TrialConfig(netG=netG, norm=norm, ngf=8))
    for size in sizes:
        with torch.no_grad():
            y = G(torch.randn(2, 3, size, size))
        assert y.shape == (2, 3, size, size)
        assert y.abs().max() <= 1.0  # tanh output


@pytest.mark.parametrize("netD, out", [("basic", {64: 6, 256: 30}), ("pixel", {64: 64, 256: 256})])
def test_discriminator_shapes(netD, out):
    D = build_discriminator(TrialConfig(netD=netD, ndf=8))
    for size, side in out.items():
        with torch.no_grad():
            assert D(torch.randn(1, 3, size, size)).shape == (1, 1, side, side)


def test_n_layers_discriminator_depth():
    D = build_discriminator(TrialConfig(netD="n_layers", n_layers_D=4, ndf=8))
    with torch.no_grad():
        assert D(torch.randn(1, 3, 256, 256)).shape == (1, 1, 14, 14)


def _receptive_field(D, size=160) -> int:
    x = torch.zeros(1, 3, size, size, requires_grad=True)
    y = D(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = (x.grad.abs().sum(dim=(0, 1, 3)) > 0).nonzero()
    return int(rows.max() - rows.min() + 1)


def test_patchgan_receptive_field_is_70():
    # norm "none": instance norm would couple every pixel through its statistics
    torch.manual_seed(0)
    assert _receptive_field(build_discriminator(TrialConfig(netD="basic", norm="none", ndf=8))) == 70
    assert _receptive_field(build_discriminator(TrialConfig(netD="pixel", norm="none", ndf=8))) == 1


def test_init_normal_statistics_and_bias():
    G = build_generator(TrialConfig(ngf=64, netG="resnet_6blocks"), torch.Generator().manual_seed(0))
    conv = G.model[1]
    assert abs(conv.weight.std().item() - 0.02) < 0.002 and abs(conv.weight.mean().item()) < 0.002
    assert torch.count_nonzero(conv.bias) == 0
    Db = build_discriminator(TrialConfig(norm="batch"), torch.Generator().manual_seed(0))
    bn = Db.model[3]
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and torch.count_nonzero(bn.bias) == 0


@pytest.mark.parametrize("init_type", ["normal", "xavier", "kaiming", "orthogonal"])
def test_inits_are_seeded(init_type):
    cfg = TrialConfig(init_type=init_type, ngf=8, netG="resnet_6blocks")
    a = build_generator(cfg, torch.Generator().manual_seed(3)).state_dict()
    b = build_generator(cfg, torch.Generator().manual_seed(3)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_conv_bias_follows_reference_rule():
    # instance norm: conv bias on; batch and none: off (the final 7x7 conv always has a bias)
    for norm, has_bias in (("instance", True), ("batch", False), ("none", False)):
        G = build_generator(TrialConfig(norm=norm, ngf=8, netG="resnet_6blocks"))
        assert (G.model[1].bias is not None) is has_bias
        assert G.model[-2].bias is not None
