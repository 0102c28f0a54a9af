"""Which execution path a trial takes on this device: `precision`, `channels_last` and
`batched_passes` set to "auto" are resolved here, per device, before any network is built.

The rule (BENCHMARKS.md, "Execution path per instruction set"): bf16 only where the device computes
it natively (CUDA with bf16; an x86 CPU whose ATen and oneDNN kernels may use AVX-512 with
avx512_bf16 or AMX). Elsewhere bf16 is emulated: a CycleGAN step ran 22x slower than fp32 on an
AVX2 CPU. channels_last and batched passes go with native bf16 (measured +0-15 % and +15-30 % on
top of it) and on CUDA; on a CPU in fp32 both were within noise of plain, so auto keeps plain there.
The decision reads capability flags only (no timing probe), so the same machine always takes the
same path and a rerun with the same seed gives the same numbers.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys

import torch

from maskcycle.config import TrialConfig

EXECUTION_FIELDS = ("precision", "channels_last", "batched_passes")
# ONEDNN_MAX_CPU_ISA values that still let oneDNN use bf16 instructions (its ISA names, upper case)
_ONEDNN_BF16_ISAS = ("ALL", "AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX512_CORE_FP16", "AVX10")
# what emulated bf16 cost on a CPU without it (BENCHMARKS.md: C1 on an AVX2 EPYC, fast vs plain)
EMULATED_BF16_SLOWDOWN = "about 20x slower than fp32 (22x measured on an AVX2 CPU)"


@dataclasses.dataclass(frozen=True)
class Capability:
    """What a device computes natively, as far as the path choice needs it."""

    device: str  # "cpu" or "cuda:0"
    name: str  # e.g. "CPU x86_64, ATen AVX512, oneDNN ALL" or "NVIDIA H200 (sm_90)"
    bf16_native: bool
    why: str  # one clause: why bf16 is or is not native here


def cpu_capability() -> Capability:
    """The CPU's bf16 support as PyTorch will really use it: the hardware flags, limited by
    ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA when they force the kernels down."""
    aten = torch.backends.cpu.get_cpu_capability()  # honours ATEN_CPU_CAPABILITY
    onednn = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    name = f"CPU {platform.machine()}, ATen {aten}, oneDNN {onednn}"
    if platform.machine().lower() in ("x86_64", "amd64"):
        hw = _flag("_is_avx512_bf16_supported") or _flag("_is_amx_tile_supported")
        if not hw:
            return Capability("cpu", name, False, "no avx512_bf16 or AMX instructions: bf16 would be emulated")
        if not aten.startswith("AVX512"):
            return Capability("cpu", name, False, f"ATen kernels limited to {aten}: bf16 would be emulated")
        if not onednn.startswith(_ONEDNN_BF16_ISAS):
            return Capability("cpu", name, False, f"oneDNN limited to {onednn}: bf16 would be emulated")
        return Capability("cpu", name, True, "AVX-512 with bf16 instructions: bf16 is native")
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and aten != "DEFAULT"
    return Capability("cpu", name, native, "oneDNN reports bf16 support" if native else "no native bf16 on this CPU")


def _flag(name: str) -> bool:
    probe = getattr(torch.cpu, name, None)  # private probes: absent in other torch versions -> False
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def capability(device: torch.device | str) -> Capability:
    """The capability of `device` (a resolved "cpu" or "cuda[:N]")."""
    device = torch.device(device)
    if device.type != "cuda":
        return cpu_capability()
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    name = f"{torch.cuda.get_device_name(index)} (sm_{major}{minor})"
    native = major >= 8  # Ampere and later compute bf16 in hardware; earlier GPUs emulate it
    why = ("bf16 tensor cores: bf16 is native" if native
           else "no bf16 tensor cores (before sm_80): bf16 would be emulated")
    return Capability(f"cuda:{index}", name, native, why)


def choose(cap: Capability) -> dict[str, tuple[object, str]]:
    """What `auto` means for each execution field on `cap`: {field: (value, reason)}."""
    fast = cap.bf16_native
    gpu = cap.device.startswith("cuda")
    return {
        "precision": ("bf16" if fast else "fp32", cap.why),
        "channels_last": (fast, "with native bf16 (+0-15 % measured)" if fast
                          else "fp32: channels_last measured within noise of contiguous"),
        "batched_passes": (fast or gpu, "fewer, larger calls pay with bf16 or on a GPU" if fast or gpu
                           else "fp32 on a CPU: batched passes measured within noise of separate"),
    }


@dataclasses.dataclass(frozen=True)
class Execution:
    """A config resolved for one device, and how: `cfg` has no "auto" left."""

    cfg: TrialConfig
    capability: Capability
    reasons: dict[str, str]  # field -> why it has its value ("asked for" when the config set it)
    kept_from_checkpoint: bool = False
    note: str = ""  # set when a resumed run keeps a path this device would not have chosen

    def record(self) -> dict:
        """For run.json and checkpoints: the values that ran, why, and on what."""
        return {"device": self.capability.device, "device_name": self.capability.name,
                "bf16_native": self.capability.bf16_native,
                **{f: getattr(self.cfg, f) for f in EXECUTION_FIELDS},
                "reasons": dict(self.reasons), "kept_from_checkpoint": self.kept_from_checkpoint,
                **({"note": self.note} if self.note else {})}

    def summary(self) -> str:
        """The one line printed when a trial starts."""
        c = self.cfg
        line = (f"execution on {self.capability.name}: precision {c.precision}, channels_last "
                f"{str(c.channels_last).lower()}, batched_passes {str(c.batched_passes).lower()} "
                f"({self.reasons['precision']})")
        return line + (f"; {self.note}" if self.note else "")


def resolve(cfg: TrialConfig, device: torch.device | str, saved: dict | None = None) -> Execution:
    """`cfg` with every "auto" execution field decided for `device`. `saved` is the record of the
    run being resumed (`Execution.record()`): its values are kept, so a trial resumed on another
    machine continues on the path it started with; `note` says when this device would differ."""
    cap = capability(device)
    picks = choose(cap)
    values, reasons, differs = {}, {}, []
    for field in EXECUTION_FIELDS:
        asked = getattr(cfg, field)
        if asked != "auto":
            values[field], reasons[field] = asked, "asked for"
        elif saved is not None and field in saved:
            values[field], reasons[field] = saved[field], "kept from the run being resumed"
            if saved[field] != picks[field][0]:
                differs.append(f"{field} {saved[field]} (this device would pick {picks[field][0]})")
        else:
            values[field], reasons[field] = picks[field]
    note = ("resumed on the path it started with: " + ", ".join(differs)) if differs else ""
    resolved = dataclasses.replace(cfg, **values) if values != {f: getattr(cfg, f) for f in EXECUTION_FIELDS} else cfg
    return Execution(resolved, cap, reasons, saved is not None and any(
        r == "kept from the run being resumed" for r in reasons.values()), note)


def warn_if_emulated(execution: Execution, stream=None) -> None:
    """An explicit `precision: bf16` where bf16 is emulated runs as asked, with one warning."""
    if execution.cfg.precision == "bf16" and not execution.capability.bf16_native \
            and execution.reasons["precision"] == "asked for":
        print(f"warning: precision bf16 on {execution.capability.name}: {execution.capability.why}; "
              f"expect {EMULATED_BF16_SLOWDOWN}. Use precision: auto (or fp32) for speed.",
              file=stream or sys.stderr)


def require_resolved(cfg: TrialConfig) -> None:
    """Raise when an "auto" reached code that runs networks (a missing `resolve` call)."""
    left = [f for f in EXECUTION_FIELDS if getattr(cfg, f) == "auto"]
    if left:
        raise RuntimeError(f"execution settings {left} are still 'auto': resolve the config for its device first "
                           "(maskcycle.models.execution.resolve)")
