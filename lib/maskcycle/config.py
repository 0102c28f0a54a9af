"""TrialConfig: the one schema of a trial, shared by notebooks, CLI and sweep.

Defaults equal the reference CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix, `train.py` with
`--model cycle_gan`). Field names follow the reference's option names where one exists (CUT's
options for the CUT fields: taesungp/contrastive-unpaired-translation); new fields get plain
names. `model` picks the family (models/families.py); the fields only one family reads say so.
What a family adds to the schema lives in its own module, as a `FamilySettings` it registers here:
which directions it learns, the values of its None-defaulted fields (CUT's `CUT_mode` presets,
resolved when the config is built, so config.yaml holds numbers) and its own value checks.
Shared fields keep CycleGAN's defaults for every model: the params YAMLs of CUT and pix2pix set
their references' values (init_type, pool_size, norm, ...). Every invalid key or value raises
`ConfigError` naming it, before any work starts. Reading params files (`base:`, overrides) is
params.py; the type check and command-line flags every settings class shares are settings.py.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from maskcycle.io import atomic_write_text
from maskcycle.params import parse_overrides, read_settings_yaml
from maskcycle.settings import ConfigError, check_field_types, field_hints


def size_multiple(netG: str) -> int:
    """Image sides a generator can take are multiples of this (its down-samplings): a U-Net halves 7
    (unet_128) or 8 (unet_256) times, a ResNet generator twice."""
    if netG.startswith("unet"):
        return 128 if netG == "unet_128" else 256
    return 4


NetG = Literal["resnet_9blocks", "resnet_6blocks", "unet_128", "unet_256"]
NetD = Literal["basic", "n_layers", "pixel"]
Norm = Literal["instance", "batch", "none"]
InitType = Literal["normal", "xavier", "kaiming", "orthogonal"]
GanMode = Literal["lsgan", "vanilla", "wgangp"]
CycleLoss = Literal["l1", "l2"]
Optimizer = Literal["adam", "adamw", "rmsprop", "sgd"]
LrPolicy = Literal["linear", "step", "plateau", "cosine"]
LrStepAt = Literal["start", "end"]
PlateauMetric = Literal["reference", "loss_G"]
Preprocess = Literal["resize_and_crop", "resize"]  # resize: straight to crop_size, no crop
Device = Literal["auto", "cpu", "cuda"]
Direction = Literal["AB", "BA"]
Composite = Literal["none", "mask"]
Segmenter = Literal["grabcut", "colour", "landmarks"]  # data/segment.py METHODS (default: its DEFAULT_METHOD)
InpaintMethod = Literal["telea", "ns"]
TEXTURES = ("surgical_blue", "white", "black_cloth", "patterned_cloth")  # models/textures.py draws them
MASK_PLACEMENTS = ("correct", "nose_uncovered", "chin_uncovered", "nose_mouth_uncovered")  # MaskedFace-Net's
Precision = Literal["auto", "fp32", "bf16"]  # auto: bf16 where native (models/execution.py)
Auto = Literal["auto"]  # an execution switch that models/execution.py decides per device
CompileMode = Literal["default", "reduce-overhead", "max-autotune"]  # torch.compile's modes


# Fields that never change a trial's numbers: a checkpoint may be resumed with other values.
# (`dataroot` is not one: other data changes the numbers. The trainer accepts another dataroot only
# when it holds the same files, e.g. the data set moved; see trainer._check_resumable.)
RUN_CONTROL_FIELDS = frozenset({"name", "num_threads", "log_freq", "save_latest_freq", "save_epoch_freq", "seeds"})
# ...and what tables of a sweep's trials leave out of the "varied hyper-parameters" (where the run
# happened, where its data lay, how many sample images it drew, whether and how it was compiled,
# whether its passes were batched: these change rounding only). `direction` too: summary.csv has a
# `directions` column that is right for CycleGAN (both) as well; `seed` has its own column (a trial
# run at several seeds is one trial, several rows).
NOT_HYPERPARAMETERS = RUN_CONTROL_FIELDS | {"dataroot", "device", "n_samples", "compile", "compile_mode",
                                            "batched_passes", "direction", "seed"}


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    """One trial's settings. See README/params for what each axis of the study varies."""

    # identity and data
    name: str = "trial"
    model: str = "cyclegan"  # a registered family: cyclegan | cut | fastcut | pix2pix (models/families.py)
    direction: Direction = "AB"  # what a one-way model (CUT, FastCUT, pix2pix) learns; CycleGAN learns both
    dataroot: str = "data/curated"  # folder with trainA/trainB[/testA/testB]
    max_dataset_size: int = 0  # 0 = all images (reference: inf)
    # networks
    netG: NetG = "resnet_9blocks"
    netD: NetD = "basic"
    ngf: int = 64
    ndf: int = 64
    n_layers_D: int = 3
    norm: Norm = "instance"
    init_type: InitType = "normal"
    init_gain: float = 0.02
    use_dropout: bool = False  # CycleGAN uses no dropout (reference: --no_dropout)
    # losses
    gan_mode: GanMode = "lsgan"
    lambda_A: float = 10.0
    lambda_B: float = 10.0
    lambda_identity: float = 0.5
    cycle_loss: CycleLoss = "l1"
    lambda_gp: float = 10.0  # only with wgangp; the reference never applies its penalty (0 = as it)
    pool_size: int = 50  # CycleGAN and pix2pix (its reference: 0); CUT keeps no pool
    # CUT / FastCUT (their option names; read only when model is cut or fastcut)
    lambda_GAN: float = 1.0
    lambda_NCE: float | None = None  # None: CUT 1, FastCUT 10
    nce_idt: bool | None = None  # the NCE term also on G(B) vs B; None: CUT true, FastCUT false
    flip_equivariance: bool | None = None  # None: CUT false, FastCUT true
    nce_layers: str = "0,4,8,12,16"  # generator layers (indices into its Sequential) PatchNCE reads
    num_patches: int = 256  # patches sampled per layer
    nce_T: float = 0.07
    netF_nc: int = 256  # units of the 2-layer MLP head per layer
    no_antialias: bool = False  # CUT's G and D downsample with a blur filter unless set
    no_antialias_up: bool = False  # CUT's G upsamples with a fixed filter + conv unless set
    # pix2pix (read only when model is pix2pix)
    lambda_L1: float = 100.0
    # mask-guided compositing of a learned model's output (evaluation and translation, not training):
    # mask = B->A keeps every input pixel outside the dilated, feathered predicted mask, A->B changes
    # only the lower face (from the landmarks)
    composite: Composite = "none"
    segmenter: Segmenter = "grabcut"  # how the mask is found (composite B->A, inpaint, maskcycle masks)
    mask_dilate: float = 0.04  # composite and inpaint: grow the region by this share of the crop side
    # the non-learned families (model template / inpaint / do_nothing; no training step)
    template_textures: str = "surgical_blue,white,black_cloth,patterned_cloth"  # drawn per image by seed
    template_placements: str = "correct"  # MaskedFace-Net's classes, drawn per image by seed
    inpaint_method: InpaintMethod = "telea"  # OpenCV: Telea (fast marching) or Navier-Stokes
    inpaint_radius: float = 0.03  # OpenCV's inpaintRadius as a share of the crop side
    # optimisation
    optimizer: Optimizer = "adam"
    lr: float = 0.0002
    beta1: float = 0.5
    beta2: float = 0.999
    momentum: float = 0.0  # sgd and rmsprop
    weight_decay: float = 0.0  # for every optimiser, adamw included (torch default 0.01 not used)
    lr_policy: LrPolicy = "linear"
    lr_step_at: LrStepAt = "start"  # the study's copy stepped at epoch start; upstream now at end
    lr_decay_iters: int = 50  # step policy: epochs between x0.1 drops
    plateau_metric: PlateauMetric = "reference"  # reference feeds a constant 0 to the scheduler
    n_epochs: int = 100
    n_epochs_decay: int = 100
    # data pipeline
    preprocess: Preprocess = "resize_and_crop"
    load_size: int = 286
    crop_size: int = 256
    no_flip: bool = False
    batch_size: int = 1
    serial_batches: bool = False
    num_threads: int = 4
    # bookkeeping
    save_epoch_freq: int = 5
    save_latest_freq: int = 5000  # in images, as the reference counts iterations
    log_freq: int = 100  # iterations between host syncs that flush losses.csv
    n_samples: int = 4  # images per direction in the per-epoch sample grid
    seed: int = 0
    seeds: int = 1  # a sweep runs the trial at seed, seed + 1, ..., seed + seeds - 1 (one folder each)
    # execution
    device: Device = "auto"
    precision: Precision = "fp32"  # fp32 (the exactness reference) | bf16 | auto (chosen per device)
    channels_last: bool | Auto = False
    compile: bool = False
    compile_mode: CompileMode = "default"  # with compile; "reduce-overhead" = CUDA graphs (CUDA only)
    # 3 generator calls on concatenated batches instead of 6, one D call on [real; fake]; same
    # numbers up to rounding; ignored with norm batch (its statistics would mix the images)
    batched_passes: bool | Auto = False
    nproc: int = 1  # processes per node for one trial (DDP via torchrun); batch_size is the global batch
    nnodes: int = 1

    def __post_init__(self) -> None:
        for key, value in family_settings(self.model).presets.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)  # frozen: resolved once, here
        check_field_types(self)
        _check_values(self)

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrialConfig:
        """Build from a mapping; unknown keys and bad values raise ConfigError naming `source`."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a mapping of settings, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}")
        coerced = {k: _coerce(k, v, source) for k, v in values.items()}
        try:
            return cls(**coerced)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: dict[str, Any] | list[str] | None = None):
        """Load a YAML file of settings, then apply overrides (a dict or `key=value` strings)."""
        values = read_settings_yaml(path)
        values.update(parse_overrides(overrides))
        return cls.from_dict(values, source=str(path))

    @classmethod
    def from_params(cls, params_file: str | os.PathLike, overrides: dict[str, Any] | list[str] | str | None = None):
        """A trial from a params file and overrides, named after the file unless it names itself:
        what notebook 02 and the sweep build (`maskcycle train` too)."""
        values = read_settings_yaml(params_file)
        values.update(parse_overrides(overrides))
        values.setdefault("name", Path(params_file).stem)
        return cls.from_dict(values, source=str(params_file))

    def replace(self, **changes: Any) -> TrialConfig:
        """A copy with some fields changed (validated)."""
        return TrialConfig.from_dict({**self.to_dict(), **changes}, source="override")

    # --- output -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self, path: str | os.PathLike) -> None:
        """Write the resolved config atomically."""
        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    # --- derived ------------------------------------------------------------------------
    @property
    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay

    @property
    def directions(self) -> tuple[str, ...]:
        """The translation directions this trial trains: both for a two-way family, else `direction`."""
        return directions(self.to_dict())

    @property
    def learned(self) -> bool:
        """False for the families with no training step (`non_learned`)."""
        return family_settings(self.model).trains

    @property
    def texture_list(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.template_textures.split(",") if t.strip())

    @property
    def placement_list(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.template_placements.split(",") if t.strip())

    @property
    def nce_layer_ids(self) -> list[int]:
        return [int(i) for i in self.nce_layers.split(",")]


# --- what each model family adds to the schema ------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FamilySettings:
    """A model family's part of the schema, declared in the family's module (models/families.py
    registers it): whether it learns both directions, the values its None-defaulted fields take
    (e.g. CUT's CUT_mode presets), and `check(cfg, bad)`, its own value checks, which calls
    `bad(key, why)` for the first bad value."""

    two_way: bool = False  # learns AB and BA (CycleGAN); else only `cfg.direction`
    antialias: bool = False  # its G and D blur before down-sampling unless no_antialias (CUT's networks)
    trains: bool = True  # False: a non-learned family (no training step; its trial is its settings)
    translates: tuple[str, ...] = ("AB", "BA")  # the values `direction` may take
    presets: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    check: Callable[[Any, Callable[[str, str], None]], None] | None = None


_FAMILY_SETTINGS: dict[str, FamilySettings] = {}


def register_family_settings(name: str, settings: FamilySettings) -> None:
    """Make `name` a valid `model` value (models.families.register calls this)."""
    _FAMILY_SETTINGS[name] = settings


def family_settings(name: str) -> FamilySettings:
    """The registered settings of family `name`; ConfigError naming the registered ones otherwise."""
    if not _FAMILY_SETTINGS:
        # The built-in families register on import of the models stage: asked for by name, so this
        # schema module does not depend on it (the layering test reads import statements only).
        importlib.import_module("maskcycle.models.families")
    if name not in _FAMILY_SETTINGS:
        raise ConfigError(f"key 'model': value {name!r} is not one of {', '.join(map(repr, _FAMILY_SETTINGS))}")
    return _FAMILY_SETTINGS[name]


def non_learned() -> dict[str, tuple[str, ...]]:
    """The registered families with no training step -> the directions each translates."""
    family_settings("cyclegan")  # the registry is filled on first use
    return {n: (("AB", "BA") if s.two_way else s.translates) for n, s in _FAMILY_SETTINGS.items() if not s.trains}


def directions(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The directions a trial with these settings (a config mapping) learns."""
    two_way = family_settings(settings.get("model", "cyclegan")).two_way
    return ("AB", "BA") if two_way else (settings.get("direction", "AB"),)


def check_processes(cfg: TrialConfig, device_type: str) -> None:
    """Settings that several processes cannot run on `device_type` ("cpu"/"cuda"): checked when the
    config names its device, and again by DDP once "auto" has been resolved."""
    world = cfg.nproc * cfg.nnodes
    if world > 1 and cfg.norm == "batch" and device_type != "cuda":
        raise ConfigError(
            f"key 'norm': value 'batch' with nproc*nnodes = {world} needs SyncBatchNorm, which PyTorch "
            "supports on CUDA only; use norm 'instance', one process, or GPUs")


def defaults() -> dict[str, Any]:
    """Every field's default, as plain values."""
    return {f.name: f.default for f in dataclasses.fields(TrialConfig)}


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrialConfig)]


# --- validation ---------------------------------------------------------------------------
def _coerce(key: str, value: Any, source: str) -> Any:
    """Accept an int where a float is expected (YAML writes 10 for 10.0), and a float written
    without a dot (`2e-4`: YAML 1.1 reads it as a string)."""
    hint = field_hints(TrialConfig).get(key)
    if get_origin(hint) is types.UnionType:  # `float | None`
        hint = next(h for h in get_args(hint) if h is not type(None))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check_values(cfg: TrialConfig) -> None:
    def bad(key: str, why: str) -> None:
        raise ConfigError(f"key {key!r}: value {getattr(cfg, key)!r} {why}")

    for key in ("lr", "init_gain"):
        if not getattr(cfg, key) > 0:
            bad(key, "must be > 0")
    for key in ("ngf", "ndf", "n_layers_D", "batch_size", "load_size", "crop_size",
                "save_epoch_freq", "save_latest_freq", "log_freq", "seeds"):
        if getattr(cfg, key) < 1:
            bad(key, "must be >= 1")
    for key in ("lambda_A", "lambda_B", "lambda_identity", "lambda_gp", "momentum",
                "weight_decay", "pool_size", "n_epochs", "n_epochs_decay", "max_dataset_size",
                "num_threads", "n_samples", "seed"):
        if getattr(cfg, key) < 0:
            bad(key, "must be >= 0")
    for key in ("beta1", "beta2"):
        if not 0 <= getattr(cfg, key) < 1:
            bad(key, "must be in [0, 1)")
    if cfg.total_epochs < 1:
        bad("n_epochs", "plus n_epochs_decay must be >= 1")
    if cfg.lr_decay_iters < 1:
        bad("lr_decay_iters", "must be >= 1")
    if cfg.preprocess == "resize_and_crop" and cfg.crop_size > cfg.load_size:
        bad("crop_size", f"must be <= load_size ({cfg.load_size})")
    if cfg.crop_size % size_multiple(cfg.netG):
        bad("crop_size", f"must be a multiple of {size_multiple(cfg.netG)} for {cfg.netG}")
    for key in ("nproc", "nnodes"):
        if getattr(cfg, key) < 1:
            bad(key, "must be >= 1")
    if cfg.batch_size % (cfg.nproc * cfg.nnodes):
        bad("batch_size", f"is the global batch and must be divisible by nproc * nnodes = {cfg.nproc * cfg.nnodes}")
    if cfg.device == "cpu":
        check_processes(cfg, "cpu")
    if not cfg.name or cfg.name in (".", "..") or any(c in cfg.name for c in "/\\\0"):
        bad("name", "must be a file name (a trial folder inside the output folder)")
    _check_model_values(cfg, bad)
    _check_geometry(cfg, bad)


def _conv_side(x: int, kernel: int, stride: int, pad: int) -> int:
    return (x + 2 * pad - kernel) // stride + 1 if x >= 1 and x + 2 * pad >= kernel else 0


def patchgan_side(side: int, n_layers: int, antialias: bool, norm_needs_two: bool) -> int:
    """The side of the PatchGAN's output map for side x side images (models.networks.NLayerDiscriminator,
    stride-2 4x4 convs, or stride-1 convs + blur-subsample with `antialias`), or 0 when a layer cannot
    take its input (a normalised map of one pixel with `norm_needs_two`: instance norm, or batch norm
    of one image)."""
    x = side
    for i in range(n_layers):
        x = _conv_side(x, 4, 1 if antialias else 2, 1)
        if x < 1 or (i > 0 and norm_needs_two and x < 2):
            return 0
        if antialias:  # reflection pad 1 (needs 2 pixels), 3x3 blur, stride 2
            x = _conv_side(x, 3, 2, 1) if x >= 2 else 0
    x = _conv_side(x, 4, 1, 1)
    if x < 1 or (norm_needs_two and x < 2):
        return 0
    return _conv_side(x, 4, 1, 1)


def resnet_layers(cfg: TrialConfig) -> int:
    """Entries of the ResNet generator's Sequential (models.networks.ResnetGenerator), which CUT's
    nce_layers index: stem 4, two down-samplings of 3 (4 with CUT's blur), the blocks, two
    up-samplings of 3 (4 with CUT's filter), head 3."""
    cut = family_settings(cfg.model).antialias
    down = 4 if cut and not cfg.no_antialias else 3
    up = 4 if cut and not cfg.no_antialias_up else 3
    blocks = int(cfg.netG.split("_")[1].removesuffix("blocks"))
    return 4 + 2 * down + blocks + 2 * up + 3


def _check_geometry(cfg: TrialConfig, bad) -> None:
    """The networks fit the crop (checked here so that a bad pair fails before any work, naming the
    keys, not inside torch): the ResNet generator's residual blocks need 2x2 after its two
    down-samplings, and the PatchGAN's layers must leave at least one patch."""
    if cfg.netG.startswith("resnet_") and cfg.crop_size < 8:
        bad("crop_size", f"is too small for netG {cfg.netG!r}: its two down-samplings leave "
                         f"{cfg.crop_size // 4}x{cfg.crop_size // 4} and its residual blocks need 2x2 (crop_size >= 8)")
    if cfg.netD == "pixel":
        return
    n = 3 if cfg.netD == "basic" else cfg.n_layers_D
    antialias = family_settings(cfg.model).antialias and not cfg.no_antialias
    per_process = cfg.batch_size // (cfg.nproc * cfg.nnodes)
    needs_two = cfg.norm == "instance" or (cfg.norm == "batch" and per_process == 1)
    if patchgan_side(cfg.crop_size, n, antialias, needs_two) >= 1:
        return
    fits = [k for k in range(1, n) if patchgan_side(cfg.crop_size, k, antialias, needs_two) >= 1]
    step = size_multiple(cfg.netG)
    least = next(c for c in range(step, 2**16, step) if patchgan_side(c, n, antialias, needs_two) >= 1)
    if cfg.netD == "basic":
        key, what = "netD", "'basic' (a 3-layer PatchGAN)"
    else:
        key, what = "n_layers_D", f"{n} with netD 'n_layers'"
    way = f"n_layers_D <= {fits[-1]} with netD 'n_layers', or " if fits else ""
    raise ConfigError(f"key {key!r}: value {what} needs crop_size >= {least}, got crop_size {cfg.crop_size}: its "
                      f"down-samplings leave less than one patch to judge; use {way}a larger crop_size")


def _check_model_values(cfg: TrialConfig, bad) -> None:
    """The fields of every family (checked whatever the model, so a typo never waits for a run),
    then the trial's family's own checks."""
    for key in ("lambda_GAN", "lambda_NCE", "lambda_L1"):
        value = getattr(cfg, key)
        if value is not None and value < 0:
            bad(key, "must be >= 0")
    for key in ("num_patches", "netF_nc"):
        if getattr(cfg, key) < 1:
            bad(key, "must be >= 1")
    if not cfg.nce_T > 0:
        bad("nce_T", "must be > 0")
    try:
        ids = cfg.nce_layer_ids
    except ValueError:
        ids = []
    if not ids or any(i < 0 for i in ids) or ids != sorted(set(ids)):
        bad("nce_layers", "must be increasing layer indices separated by commas, e.g. '0,4,8,12,16'")
    check = family_settings(cfg.model).check
    if check is not None:
        check(cfg, bad)
    _check_baseline_values(cfg, bad)


def _check_baseline_values(cfg: TrialConfig, bad) -> None:
    """The compositing and non-learned families' fields (checked whatever the model)."""
    fam = family_settings(cfg.model)
    if cfg.direction not in fam.translates:
        bad("direction", f"cannot be translated by model {cfg.model!r} (it translates "
                         f"{' and '.join(fam.translates)} only)")
    if not fam.trains and cfg.composite != "none":
        bad("composite", f"applies to learned models only; {cfg.model!r} changes only its own region already")
    for key in ("mask_dilate", "inpaint_radius"):
        if not 0 <= getattr(cfg, key) <= 0.5:
            bad(key, "must be a share of the crop side in [0, 0.5]")
    for key, allowed in (("template_textures", TEXTURES), ("template_placements", MASK_PLACEMENTS)):
        items = cfg.texture_list if key == "template_textures" else cfg.placement_list
        if not items or any(i not in allowed for i in items):
            bad(key, f"must be one or more of {', '.join(allowed)} separated by commas")

