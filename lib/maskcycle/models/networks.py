"""Generators and discriminators with the reference CycleGAN's exact layouts and parameter counts,
CUT's anti-aliased variants of them (its default), pix2pix's conditional discriminator input, and
CUT's lazily built MLP head (PatchSampleF "mlp_sample")."""

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


def _binomial(size: int) -> torch.Tensor:
    """The 2-D binomial blur filter of CUT's anti-aliasing ([1,2,1] or [1,3,3,1], outer product, sum 1)."""
    a = torch.tensor({3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}[size])
    f = a[:, None] * a[None, :]
    return f / f.sum()


class Downsample(nn.Module):
    """Blur then subsample by 2 (CUT's anti-aliased downsampling, Zhang 2019): reflect pad 1,
    depthwise 3x3 binomial filter, stride 2. No parameters; the filter is a buffer (`filt`, the
    reference's key, so its checkpoints' keys match)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("filt", _binomial(3)[None, None].repeat(channels, 1, 1, 1))
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


class Upsample(nn.Module):
    """x2 upsampling by a fixed [1,3,3,1] transposed filter (CUT's anti-aliased upsampling):
    replicate pad 1, depthwise transposed conv, crop to exactly 2H x 2W. No parameters."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("filt", (_binomial(4) * 4)[None, None].repeat(channels, 1, 1, 1))
        self.pad = nn.ReplicationPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.nn.functional.conv_transpose2d(self.pad(x), self.filt, stride=2, padding=2, groups=x.shape[1])
        return out[:, :, 1:-1, 1:-1]


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
    """CycleGAN's ResNet generator; `antialias` / `antialias_up` give CUT's default variant
    (stride-1 conv + blur-subsample down, fixed-filter upsample + conv up: the same parameters,
    other layer indices: CUT's nce_layers 0,4,8,12,16 index this Sequential)."""

    def __init__(self, in_nc: int, out_nc: int, ngf: int, norm: str, n_blocks: int, use_dropout: bool,
                 antialias: bool = False, antialias_up: bool = False):
        super().__init__()
        make_norm, bias = norm_layer(norm), _uses_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3), nn.Conv2d(in_nc, ngf, 7, bias=bias), make_norm(ngf), nn.ReLU(True)
        ]
        for i in range(2):
            c = ngf * 2**i
            if antialias:
                layers += [nn.Conv2d(c, c * 2, 3, stride=1, padding=1, bias=bias), make_norm(c * 2), nn.ReLU(True),
                           Downsample(c * 2)]
            else:
                layers += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1, bias=bias), make_norm(c * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, use_dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            if antialias_up:
                layers += [Upsample(c), nn.Conv2d(c, c // 2, 3, stride=1, padding=1, bias=bias)]
            else:
                layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)]
            layers += [make_norm(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def features(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """The outputs of the given Sequential indices (CUT's `encode_only`): runs only as far
        as the last one."""
        if layers[-1] >= len(self.model):
            raise ValueError(f"nce layer {layers[-1]} is past the generator's {len(self.model)} layers")
        feats, wanted = [], set(layers)
        for i, layer in enumerate(self.model[:layers[-1] + 1]):
            x = layer(x)
            if i in wanted:
                feats.append(x)
        return feats


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
    """PatchGAN: n_layers=3 gives the 70x70 receptive field ("basic"). `antialias`: CUT's default
    variant (stride-1 convs each followed by a blur-subsample; the same parameters)."""

    def __init__(self, in_nc: int, ndf: int, n_layers: int, norm: str, antialias: bool = False):
        super().__init__()
        make_norm, bias = norm_layer(norm), _uses_bias(norm)
        stride = 1 if antialias else 2
        layers: list[nn.Module] = [nn.Conv2d(in_nc, ndf, 4, stride=stride, padding=1), nn.LeakyReLU(0.2, True)]
        layers += [Downsample(ndf)] if antialias else []
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                       make_norm(ndf * mult), nn.LeakyReLU(0.2, True)]
            layers += [Downsample(ndf * mult)] if antialias else []
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


class PatchSampleMLP(nn.Module):
    """CUT's PatchSampleF ("mlp_sample"): per NCE layer, sample the same `num_patches` positions
    of every image, project each feature through its own Linear-ReLU-Linear head (`nc` units) and
    L2-normalise. The heads are created by `create` from the first batch's channel counts (the
    reference builds them in its first forward); `in_channels` is saved to rebuild them on resume."""

    def __init__(self, nc: int = 256):
        super().__init__()
        self.nc = nc
        self.in_channels: list[int] = []

    @property
    def created(self) -> bool:
        return bool(self.in_channels)

    def create(self, in_channels: list[int]) -> None:
        for i, c in enumerate(in_channels):
            self.add_module(f"mlp_{i}", nn.Sequential(nn.Linear(c, self.nc), nn.ReLU(), nn.Linear(self.nc, self.nc)))
        self.in_channels = list(in_channels)

    def forward(self, feats: list[torch.Tensor], num_patches: int, patch_ids: list[torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(per layer: (B * patches) x nc unit vectors, per layer: the positions drawn). Positions
        come from `patch_ids` when given (the query side reuses the key side's)."""
        out, ids = [], []
        for i, feat in enumerate(feats):
            flat = feat.permute(0, 2, 3, 1).flatten(1, 2)  # B x HW x C
            if patch_ids is not None:
                pid = patch_ids[i]
            else:  # drawn on the CPU from the model's own generator: the same on every device
                pid = torch.randperm(flat.shape[1], generator=generator)[:min(num_patches, flat.shape[1])]
                pid = pid.to(feat.device)
            x = getattr(self, f"mlp_{i}")(flat[:, pid, :].flatten(0, 1))
            out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-7))  # the reference's Normalize(2)
            ids.append(pid)
        return out, ids


def _generator(cfg: TrialConfig) -> nn.Module:
    if cfg.netG.startswith("resnet_"):
        blocks = int(cfg.netG.split("_")[1].removesuffix("blocks"))
        cut = cfg.model in ("cut", "fastcut")
        return ResnetGenerator(3, 3, cfg.ngf, cfg.norm, blocks, cfg.use_dropout,
                               antialias=cut and not cfg.no_antialias, antialias_up=cut and not cfg.no_antialias_up)
    downs = {"unet_128": 7, "unet_256": 8}[cfg.netG]
    return UnetGenerator(3, 3, downs, cfg.ngf, cfg.norm, cfg.use_dropout)


def _discriminator(cfg: TrialConfig) -> nn.Module:
    in_nc = 6 if cfg.model == "pix2pix" else 3  # pix2pix's D judges (input, output) pairs
    if cfg.netD == "pixel":
        return PixelDiscriminator(in_nc, cfg.ndf, cfg.norm)
    antialias = cfg.model in ("cut", "fastcut") and not cfg.no_antialias
    return NLayerDiscriminator(in_nc, cfg.ndf, 3 if cfg.netD == "basic" else cfg.n_layers_D, cfg.norm, antialias)


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
