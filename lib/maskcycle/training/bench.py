"""Training speed: the plain fp32 path against the fast and batched paths, interleaved in one process.

    maskcycle bench --configs C1,C2 --paths plain,fast,batched,fast_batched --out results/bench/cpu.json
    maskcycle bench --configs C1 --paths plain,auto    # what `auto` picks here, and what it gains
    python -m maskcycle.training.bench --configs GPU --device cuda --paths plain,fast_batched,compiled
    maskcycle bench --configs C1 --paths plain,fast,bf16_unfused,bf16_cl,fp32_cl   # what each means adds
    bash scripts/gpu_check.sh    # the whole GPU check (bench, norm check, a trial, translate)

Each config gets one synthetic unpaired data set (smooth colour fields; B adds a "mask" patch)
decoded into the uint8 cache, and one fresh CycleGAN per path from the same seed. Every round
runs `--iters` training iterations of each path in turn, data assembly included, so load from
other processes hits all paths alike; per path we report the median over rounds of ms/iter,
img/s, the first iteration's time (compile time for compiled paths), peak RSS (and CUDA max
allocated) and the ratio to the first path. Both paths see the same batches from the same
start, so the recorded losses also compare their trajectories (windowed means, see `compare`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from maskcycle.config import ConfigError, TrialConfig, parse_overrides, resolve_device
from maskcycle.data.images import write_png
from maskcycle.data.unpaired import UnpairedData
from maskcycle.io import atomic_write_text, check_output
from maskcycle.models import execution
from maskcycle.models.families import family
from maskcycle.models.runtime import configure_backends

# The named configs (reference CycleGAN otherwise: ngf = ndf = 64, instance norm, lsgan).
CONFIGS: dict[str, dict] = {
    "tiny": dict(load_size=36, crop_size=32, netG="resnet_6blocks", ngf=8, ndf=8, batch_size=1),
    "T32": dict(load_size=36, crop_size=32, netG="resnet_6blocks", ngf=32, ndf=32, batch_size=1),
    "C1": dict(load_size=72, crop_size=64, netG="resnet_6blocks", batch_size=1),
    "C2": dict(load_size=143, crop_size=128, netG="resnet_9blocks", batch_size=1),
    "C4": dict(load_size=286, crop_size=256, netG="resnet_9blocks", batch_size=1),
    "GPU": dict(load_size=286, crop_size=256, netG="resnet_9blocks", batch_size=16),
}
# The paths: "plain" is the exactness reference; "fast" is what TrialConfig's fast switches give.
PATHS: dict[str, dict] = {
    "plain": dict(precision="fp32", channels_last=False, compile=False),
    # what `precision/channels_last/batched_passes: auto` picks on this device (models/execution.py)
    "auto": dict(precision="auto", channels_last="auto", batched_passes="auto", compile=False),
    # fast = bf16 + channels_last (+ the fused optimiser, automatic off the plain path): measured
    # best at C2; channels_last is neutral at C1 (BENCHMARKS.md, "Training speed")
    "fast": dict(precision="bf16", channels_last=True, compile=False),
    "bf16": dict(precision="bf16", channels_last=False, compile=False),
    "bf16_unfused": dict(precision="bf16", channels_last=False, compile=False, fused=False),
    "fp32_fused": dict(precision="fp32", channels_last=False, compile=False, fused=True),
    "fp32_cl": dict(precision="fp32", channels_last=True, compile=False),
    "bf16_cl": dict(precision="bf16", channels_last=True, compile=False),
    "fp32_compile": dict(precision="fp32", channels_last=False, compile=True),
    "bf16_compile": dict(precision="bf16", channels_last=False, compile=True),
    # batched passes (3 generator calls, one call per D step); "batched" keeps the per-tensor
    # Adam so that its ratio to plain is the batching alone
    "batched": dict(precision="fp32", channels_last=False, compile=False, batched_passes=True, fused=False),
    "bf16_batched": dict(precision="bf16", channels_last=False, compile=False, batched_passes=True),
    "fast_batched": dict(precision="bf16", channels_last=True, compile=False, batched_passes=True),
    # the GPU candidate: fast_batched under torch.compile with CUDA graphs (static shapes)
    "compiled": dict(precision="bf16", channels_last=True, compile=True, compile_mode="reduce-overhead",
                     batched_passes=True),
    # the other families on the plain path, with their references' settings (pix2pix: unet_128,
    # the reference's U-Net for 128-px crops, so crops must be a multiple of 128; it times on the
    # unpaired synthetic batches, which cost the same as pairs)
    "cut": dict(precision="fp32", channels_last=False, compile=False, model="cut", init_type="xavier", pool_size=0),
    "fastcut": dict(precision="fp32", channels_last=False, compile=False, model="fastcut", init_type="xavier",
                    pool_size=0),
    "pix2pix": dict(precision="fp32", channels_last=False, compile=False, model="pix2pix", netG="unet_128",
                    norm="batch", gan_mode="vanilla", pool_size=0, use_dropout=True),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every `maskcycle bench` flag."""
    p.add_argument("--configs", default="C1,C2", help=f"comma list of {', '.join(CONFIGS)} (CONFIGS)")
    p.add_argument("--paths", default="plain,fast",
                   help=f"comma list of {', '.join(PATHS)} (PATHS); ratios are vs the first")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians over them)")
    p.add_argument("--iters", type=int, default=2, help="iterations per path per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per path first (>= 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE", help="override config fields")
    p.add_argument("--out", default=None, help="write the JSON here")


def synthetic_data(root: Path, size: int, n: int, seed: int = 0) -> Path:
    """n images per domain in root/trainA, root/trainB: smooth random colour fields (A) and the
    same kind with a light-blue lower-face patch (B), so losses move as on faces, not on noise."""

    rng = np.random.default_rng(seed)
    for domain in "AB":
        for i in range(n):
            coarse = torch.from_numpy(rng.uniform(0, 255, (1, 3, 6, 6)).astype(np.float32))
            img = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
            img = img.clamp(0, 255).round().byte()[0].permute(1, 2, 0).numpy().copy()
            if domain == "B":
                top, left = int(size * 0.55), int(size * 0.25)
                img[top:int(size * 0.85), left:size - left] = (170, 200, 230)
            write_png(root / f"train{domain}" / f"{i:04d}.png", img)
    return root


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Runner:
    """One path: its model, data and iteration counter; `run(k)` does k training iterations."""

    def __init__(self, cfg: TrialConfig, device, fused: bool | None = None):
        self.cfg, self.device = cfg, device
        self.data = UnpairedData(cfg.dataroot, cfg)
        self.fam = family(cfg)
        self.model = self.fam.build(cfg, device, fused)
        self.names = self.fam.loss_names(cfg)
        self.it, self.epoch, self.plan = 0, 0, None
        self.losses: list[list[float]] = []

    def run(self, k: int) -> float:
        configure_backends(self.cfg, self.device)
        pending = []
        _sync(self.device)
        t = time.perf_counter()
        for _ in range(k):
            b = self.it % self.data.n_batches()
            if b == 0:
                self.epoch += 1
                self.plan = self.data.plan(self.epoch)
            real_A, real_B = self.data.batch(self.plan, b, self.device)
            losses = self.fam.train_step(self.model, real_A, real_B)
            pending.append(torch.stack([losses[n] for n in self.names]))
            self.it += 1
        _sync(self.device)
        elapsed = time.perf_counter() - t
        self.losses += torch.stack(pending).cpu().tolist()  # the only host sync, after timing
        return elapsed


def bench_config(name: str, paths: list[str], device, rounds: int, iters: int,
                 warmup: int, work: Path, n_images: int = 16, overrides: dict | None = None,
                 log=print) -> dict:
    """Interleaved timing of `paths` on the named config; see the module docstring."""
    if name not in CONFIGS:
        raise ConfigError(f"bench config {name!r} is not one of {', '.join(CONFIGS)}")
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise ConfigError(f"bench path(s) {', '.join(map(repr, unknown))}: choose from {', '.join(PATHS)}")
    settings = {**CONFIGS[name], **(overrides or {})}
    root = synthetic_data(work / name, settings["load_size"], n_images)
    base = TrialConfig.from_dict({**settings, "name": f"bench_{name}", "dataroot": str(root),
                                  "device": device.type}, source=f"bench config {name}")
    runners = {}
    for p in paths:
        settings = dict(PATHS[p])
        fused = settings.pop("fused", None)
        try:
            cfg = execution.resolve(base.replace(**settings), device).cfg
        except ConfigError as exc:  # e.g. pix2pix's U-Net at a crop it cannot take
            log(f"  {name} {p}: skipped ({exc})")
            continue
        runners[p] = _Runner(cfg, device, fused)
    paths = list(runners)
    out = {"config": {k: getattr(base, k) for k in ("load_size", "crop_size", "netG", "ngf", "ndf",
                                                       "batch_size", "norm", "gan_mode")},
           "rounds": rounds, "iters_per_round": iters, "warmup_iters": warmup, "paths": {}}
    first, rss, cuda_peak = {}, {p: 0.0 for p in paths}, {p: 0 for p in paths}
    for p, r in runners.items():
        first[p] = r.run(1)
        if warmup > 1:
            r.run(warmup - 1)
        log(f"  {name} {p}: first iteration {first[p]:.2f} s")
    per_iter = {p: [] for p in paths}
    for i in range(rounds):
        for p, r in runners.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            per_iter[p].append(r.run(iters) / iters)
            rss[p] = max(rss[p], _rss_mb())
            if device.type == "cuda":
                cuda_peak[p] = max(cuda_peak[p], torch.cuda.max_memory_allocated(device))
        log(f"  {name} round {i + 1}/{rounds}: " + ", ".join(f"{p} {per_iter[p][-1] * 1e3:.0f} ms/iter" for p in paths))
    ref = paths[0]
    for p in paths:
        med = statistics.median(per_iter[p])
        out["paths"][p] = {
            "settings": PATHS[p], "median_ms_per_iter": round(med * 1e3, 2),
            "median_img_per_s": round(base.batch_size / med, 4),
            "ms_per_iter_by_round": [round(t * 1e3, 2) for t in per_iter[p]],
            "first_iter_s": round(first[p], 3), "rss_mb_max": round(rss[p], 1),
            "cuda_max_allocated_mb": round(cuda_peak[p] / 2**20, 1) if device.type == "cuda" else None,
            # ratio per round (both paths measured side by side), then its median
            "ratio_vs_" + ref: round(statistics.median(a / b for a, b in zip(per_iter[ref], per_iter[p])), 3),
        }
    out["trajectory"] = {p: r.losses for p, r in runners.items()}
    out["trajectory_comparison"] = {p: compare(runners[ref].losses, runners[p].losses, runners[ref].names)
                                    for p in paths[1:] if runners[p].names == runners[ref].names}
    return out


def compare(ref: list[list[float]], other: list[list[float]], names: tuple[str, ...], window: int = 50) -> dict:
    """How far `other`'s losses are from `ref`'s over the same iterations: per loss, the largest
    difference of windowed means (windows of `window` iterations), absolute and relative to the
    reference window's mean. Single steps of a GAN diverge chaotically; window means should not."""

    n = min(len(ref), len(other))
    if n == 0:
        return {}
    a, b = np.asarray(ref[:n]), np.asarray(other[:n])
    w = max(1, min(window, n))
    k = n // w
    am, bm = a[:k * w].reshape(k, w, -1).mean(1), b[:k * w].reshape(k, w, -1).mean(1)
    out = {"iterations": n, "window": w}
    for j, name in enumerate(names):
        diff = np.abs(am[:, j] - bm[:, j])
        rel = diff / np.maximum(np.abs(am[:, j]), 1e-8)
        out[name] = {"max_abs_diff": float(diff.max()), "max_rel_diff": float(rel.max()),
                     "first_step_abs_diff": float(abs(a[0, j] - b[0, j]))}
    return out


def machine_info(device) -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "loadavg_start": list(os.getloadavg()), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    cap = execution.capability(device)
    info["capability"] = {"name": cap.name, "bf16_native": cap.bf16_native, "why": cap.why}
    info["auto_picks"] = {k: v for k, (v, _) in execution.choose(cap).items()}
    return info


def capability_lines(device) -> list[str]:
    """What this device computes natively and what `auto` runs here, for the user."""
    cap = execution.capability(device)
    picks = execution.choose(cap)
    return [f"device: {cap.name}; bf16 native: {'yes' if cap.bf16_native else 'no'} ({cap.why})",
            "auto picks: " + ", ".join(f"{k} {str(v).lower()} ({why})" for k, (v, why) in picks.items())]


def run(configs: list[str], paths: list[str], device, rounds: int, iters: int,
        warmup: int, out: Path | None, overrides: dict | None = None, log=print) -> dict:
    """Bench every config, write JSON to `out` (atomically) and return it."""
    result = {"machine": machine_info(device), "configs": {}}
    with tempfile.TemporaryDirectory(prefix="maskcycle_bench_") as work:
        for name in configs:
            t = time.perf_counter()
            result["configs"][name] = bench_config(name, paths, device, rounds, iters, warmup, Path(work),
                                                   overrides=overrides, log=log)
            result["configs"][name]["wall_s"] = round(time.perf_counter() - t, 1)
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    result["machine"]["peak_rss_mb_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if out is not None:
        atomic_write_text(Path(out), json.dumps(result, indent=1) + "\n")
    return result


def summary_lines(result: dict) -> list[str]:
    lines = []
    for name, c in result["configs"].items():
        ref = next(iter(c["paths"]))
        for p, r in c["paths"].items():
            lines.append(f"{name:5s} {p:13s} {r['median_img_per_s']:9.3f} img/s "
                         f"{r['median_ms_per_iter']:10.1f} ms/iter first {r['first_iter_s']:7.2f} s  "
                         f"rss {r['rss_mb_max']:7.0f} MB  "
                         f"x{r['ratio_vs_' + ref]:.2f} vs {ref}")
    return lines


def run_command(args) -> int:
    if args.out:
        check_output(args.out, [], kind="file", suffix=".json")
    if min(args.rounds, args.iters, args.warmup) < 1:
        raise ConfigError("--rounds, --iters and --warmup must be >= 1 (the first iteration is the warmup)")
    device = resolve_device(args.device)
    print("\n".join(capability_lines(device)), flush=True)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = run(args.configs.split(","), args.paths.split(","), device, args.rounds,
                     args.iters, args.warmup, Path(args.out) if args.out else None, parse_overrides(args.set),
                     log=lambda s: print(s, flush=True))
    finally:
        torch.set_num_threads(threads)
    print("\n".join(summary_lines(result)))
    if args.out:
        print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m maskcycle.training.bench ARGS` is `maskcycle bench ARGS`."""
    parser = argparse.ArgumentParser(prog="python -m maskcycle.training.bench", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
