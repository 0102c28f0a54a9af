"""Generators and discriminators with the reference CycleGAN's exact layouts and parameter counts."""

from __future__ import annotations

import functools

import torch
from torch import nn

from maskcycle.config import TrialConfig


def norm_layer(kind: str):
    """A factory `channels -> module`. Reference quirk kept: only instance norm turns conv bias on."""
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if kind == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


def _uses_bias(kind: str) -> bool:
    # The reference sets bias only for InstanceNorm (norm "none" gets no bias either).
    return kind == "instance"


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str, use_dropout: bool):
        super().__init__()
        make_norm, bias = norm_layer(norm), _uses_bias(norm)
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, in_nc: int, out_nc: int, ngf: int, norm: str, n_blocks: int, use_dropout: bool):
        super().__init__()
        make_norm, bias = norm_layer(norm), _uses_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(in_nc, ngf, 7, bias=bias), make_norm(ngf), nn.ReLU(True)
        ]
        for i in range(2):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1, bias=bias), make_norm(c * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, use_dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                make_norm(c // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnetSkipBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False,
                 innermost=False, norm="instance", use_dropout=False):
        super().__init__()
        self.outermost = outermost
        make_norm, bias = norm_layer(norm), _uses_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        downrelu, uprelu = nn.LeakyReLU(0.2, True), nn.ReLU(True)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, uprelu, upconv, make_norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, make_norm(inner_nc), submodule, uprelu, upconv, make_norm(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    def __init__(self, in_nc: int, out_nc: int, num_downs: int, ngf: int, norm: str, use_dropout: bool):
        super().__init__()
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        block = UnetSkipBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipBlock(out_nc, ngf, input_nc=in_nc, submodule=block, outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: n_layers=3 gives the 70x70 receptive field ("basic")."""

    def __init__(self, in_nc: int, ndf: int, n_layers: int, norm: str):
        super().__init__()
        make_norm, bias = norm_layer(norm), _uses_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=bias),
                       make_norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=bias),
                   make_norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN (pixelGAN)."""

    def __init__(self, in_nc: int, ndf: int, norm: str):
        super().__init__()
        make_norm, bias = norm_layer(norm), _uses_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_nc, ndf, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias), make_norm(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """Reference init: conv/linear weights by `init_type`, bias 0; batch-norm weight N(1, gain)."""

    def init(m: nn.Module) -> None:
        name = type(m).__name__
        if hasattr(m, "weight") and ("Conv" in name or "Linear" in name):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(m.weight, gain=gain)
            else:
                raise ValueError(f"unknown init_type {init_type!r}")
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif "BatchNorm2d" in name:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    net.apply(init)
    return net


def _generator(cfg: TrialConfig) -> nn.Module:
    if cfg.netG.startswith("resnet_"):
        blocks = int(cfg.netG.split("_")[1].removesuffix("blocks"))
        return ResnetGenerator(3, 3, cfg.ngf, cfg.norm, blocks, cfg.use_dropout)
    downs = {"unet_128": 7, "unet_256": 8}[cfg.netG]
    return UnetGenerator(3, 3, downs, cfg.ngf, cfg.norm, cfg.use_dropout)


def _discriminator(cfg: TrialConfig) -> nn.Module:
    if cfg.netD == "pixel":
        return PixelDiscriminator(3, cfg.ndf, cfg.norm)
    return NLayerDiscriminator(3, cfg.ndf, 3 if cfg.netD == "basic" else cfg.n_layers_D, cfg.norm)


def build_generator(cfg: TrialConfig, generator: torch.Generator | None = None) -> nn.Module:
    """A freshly initialised generator. Pass `generator` (or rely on the caller's seeding) for
    reproducible weights; the global RNG is forked so nothing outside changes."""
    return _built(_generator, cfg, generator)


def build_discriminator(cfg: TrialConfig, generator: torch.Generator | None = None) -> nn.Module:
    """A freshly initialised discriminator (see build_generator)."""
    return _built(_discriminator, cfg, generator)


def _built(make, cfg: TrialConfig, generator: torch.Generator | None) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        if generator is not None:
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        return init_weights(make(cfg), cfg.init_type, cfg.init_gain)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
