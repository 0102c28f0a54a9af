#!/usr/bin/env bash
# The GPU check of issue 16, one script, under 8 minutes on an H200; everything lands under $OUT:
#   steps.json          each step's exit status and wall time, the environment, the compile payoff
#   norm_check.json     instance norm + channels_last input gradient on the device at batch 1 and 2
#   bench_b16.json      maskcycle bench, 256 px, batch 16: plain / fast / batched / fast_batched
#   bench_b1.json       the same at batch 1 (config C4)
#   bench_compiled.json fast_batched vs compiled (torch.compile reduce-overhead = CUDA graphs), batch 16
#   trial_metrics.json  one short real trial through papermill (notebook 02) on the demo data, 256 px
#   translate.json      translate_array throughput at the automatic batch size
#   gpu_check.log       everything printed
# Run from the repository root:  OUT=/tmp/gc bash scripts/gpu_check.sh
# CPU smoke test (tests/test_gpu_check.py):  TINY=1 DEVICE=cpu OUT=/tmp/gc bash scripts/gpu_check.sh
# The H200 image has torch but not papermill/ipykernel: carry them as wheels in .whl/ (see
# /work/.library/device/README.md); they are installed to /tmp/site when .whl/ exists.
# One step failing (rc != 0 in steps.json) does not stop the others.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder for the results}"
DEVICE=${DEVICE:-cuda}
TINY=${TINY:-0}
PY=${PYTHON:-python3}
KERNEL=${KERNEL:-python3}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/gpu_check.XXXXXX)
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONPATH="$PWD/lib${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site" PATH="/tmp/site/bin:$PATH"
fi
if [ "$TINY" = 1 ]; then
  B16=tiny B1=tiny ROUNDS=1 ITERS=1 IDS=60 DRAW=128 NTRAIN=8 NTEST=4 LOAD=36 CROP=32 BATCH=2 NGF=8 TIMEOUT=300
else
  B16=GPU B1=C4 ROUNDS=3 ITERS=5 IDS=300 DRAW=286 NTRAIN=240 NTEST=64 LOAD=286 CROP=256 BATCH=16 NGF=64 TIMEOUT=150
fi
STEPS="$WORK/steps.tsv"
: > "$STEPS"
step() {  # step NAME SECONDS CMD...: run with a time limit, record rc and wall time
  local name=$1 limit=$2 t0 rc
  shift 2
  echo "=== $name"
  t0=$(date +%s%N)
  timeout "$limit" "$@"
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( ($(date +%s%N) - t0) / 1000000 ))" >> "$STEPS"
}
BENCH=("$PY" -m maskcycle bench --device "$DEVICE" --rounds "$ROUNDS" --iters "$ITERS")

step norm_check 120 "$PY" - "$DEVICE" "$OUT/norm_check.json" "$CROP" "$NGF" <<'EOF'
import json, sys, torch, torch.nn.functional as F
from maskcycle.config import TrialConfig
from maskcycle.models.cyclegan import build as build_cyclegan
from maskcycle.models.cyclegan import generator_loss
dev = torch.device(sys.argv[1])
out = {"torch": torch.__version__, "device": str(dev)}
for n in (1, 2):  # the raw kernel: contiguous vs channels_last incoming gradient
    x = torch.randn(n, 64, 32, 32, device=dev, requires_grad=True); g = torch.randn(n, 64, 32, 32, device=dev)
    (a,) = torch.autograd.grad(F.instance_norm(x), x, g)
    (b,) = torch.autograd.grad(F.instance_norm(x), x, g.contiguous(memory_format=torch.channels_last))
    out[f"raw_instance_norm_max_abs_diff_batch{n}"] = float((a - b).abs().max())
def grads(**kw):  # generator weight gradients of loss_G at batch 1, fp32
    c, w = min(int(sys.argv[3]), 64), min(int(sys.argv[4]), 16)
    cfg = TrialConfig(netG="resnet_6blocks", ngf=w, ndf=w, crop_size=c, load_size=c, **kw)
    m = build_cyclegan(cfg, dev, fused=False)
    gen = torch.Generator().manual_seed(0)
    A, B = (torch.rand(1, 3, c, c, generator=gen).to(dev) * 2 - 1 for _ in range(2))
    generator_loss(m, A, B)[0].backward()
    return torch.cat([p.grad.flatten() for net in (m.G_AB, m.G_BA) for p in net.parameters()])
torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 here
ref = grads()
for name, kw in {"channels_last": dict(channels_last=True),
                 "channels_last_batched": dict(channels_last=True, batched_passes=True),
                 "batched": dict(batched_passes=True)}.items():
    out[f"model_grad_rel_err_{name}"] = float((grads(**kw) - ref).norm() / ref.norm())
out["ok"] = all(v < 2e-2 for k, v in out.items() if k.startswith("model_grad"))
json.dump(out, open(sys.argv[2], "w"), indent=1); print(out)
EOF

step bench_b16 "$TIMEOUT" "${BENCH[@]}" --configs "$B16" --paths plain,fast,batched,fast_batched --out "$OUT/bench_b16.json"
step bench_b1 "$TIMEOUT" "${BENCH[@]}" --configs "$B1" --paths plain,fast,batched,fast_batched --out "$OUT/bench_b1.json"
if [ "$TINY" != 1 ]; then  # compiling on a CPU takes minutes: GPU only
  step bench_compiled 200 "${BENCH[@]}" --configs "$B16" --paths fast_batched,compiled --out "$OUT/bench_compiled.json"
fi

# One short real trial: demo data -> curation -> notebook 02 through papermill, fast_batched settings.
cat > "$WORK/trial.yaml" <<EOF
name: gpu_check
dataroot: $WORK/curated
load_size: $LOAD
crop_size: $CROP
ngf: $NGF
ndf: $NGF
batch_size: $BATCH
n_epochs: 1
n_epochs_decay: 1
device: $DEVICE
precision: bf16
channels_last: true
batched_passes: true
num_threads: 4
n_samples: 2
EOF
step demo_data 60 "$PY" -m maskcycle demo-data --out "$WORK/raw" --n-ids "$IDS" --size "$DRAW" --workers 0
step curate 90 "$PY" -m maskcycle curate --ffhq "$WORK/raw/ffhq" --maskedfacenet "$WORK/raw/maskedfacenet" \
  --out "$WORK/curated" --n-train "$NTRAIN" --n-test "$NTEST" --n-val "$NTEST" --load-size "$LOAD"
step trial 150 "$PY" -m papermill -k "$KERNEL" --log-level WARNING notebooks/02_training.ipynb "$WORK/trial.ipynb" \
  -p params_file "$WORK/trial.yaml" -p out_dir "$WORK/trial"
cp "$WORK/trial/metrics.json" "$OUT/trial_metrics.json" 2>/dev/null || echo "no trial metrics"

step translate 60 "$PY" - "$DEVICE" "$WORK/trial/checkpoints/latest.pt" "$CROP" "$NGF" "$OUT/translate.json" <<'EOF'
import json, os, sys, time, numpy as np, torch
from maskcycle.config import TrialConfig
from maskcycle.evaluation.translate import AUTO_BATCH, translate_array
from maskcycle.models.cyclegan import build as build_cyclegan
dev, ckpt, crop, ngf, out_path = torch.device(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if os.path.exists(ckpt):  # the trial's generator, with its precision and layout
    from maskcycle.models.checkpoints import load_generators
    cfg, G, _ = load_generators(ckpt, dev)
else:  # the trial failed: a fresh generator with the same settings
    cfg = TrialConfig(crop_size=crop, load_size=crop, ngf=ngf, precision="bf16", channels_last=True)
    G = build_cyclegan(cfg, dev).G_AB
n = 512 if dev.type == "cuda" else 8
images = np.random.default_rng(0).integers(0, 256, (n, crop, crop, 3), dtype=np.uint8)
result = {"checkpoint": ckpt if os.path.exists(ckpt) else None, "images": n, "crop": crop, "precision": cfg.precision}
for bs in (0, 16):  # 0 = the automatic (largest) batch
    translate_array(G, images[:min(n, 32)], cfg, bs)  # warm up (cudnn autotuning, allocator)
    if dev.type == "cuda": torch.cuda.synchronize()
    t = time.perf_counter(); translate_array(G, images, cfg, bs)
    if dev.type == "cuda": torch.cuda.synchronize()
    result[f"img_per_s_batch_{bs}" if bs else f"img_per_s_auto_batch_{AUTO_BATCH.get(dev.type)}"] = round(n / (time.perf_counter() - t), 2)
json.dump(result, open(out_path, "w"), indent=1); print(result)
EOF

"$PY" - "$STEPS" "$OUT" <<'EOF'
import json, os, sys, torch
steps = [dict(zip(("step", "rc", "wall_s"), line.split("\t"))) for line in open(sys.argv[1]).read().splitlines()]
for s in steps: s["rc"], s["wall_s"] = int(s["rc"]), round(int(s["wall_s"]) / 1e3, 1)
out = {"steps": steps, "torch": torch.__version__,
       "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
try:  # when torch.compile pays off: compile time / time saved per iteration, in epochs of 6000 images
    c = json.load(open(os.path.join(sys.argv[2], "bench_compiled.json")))["configs"]["GPU"]
    eager, comp = c["paths"]["fast_batched"], c["paths"]["compiled"]
    saved = (eager["median_ms_per_iter"] - comp["median_ms_per_iter"]) / 1e3
    extra = comp["first_iter_s"] - eager["first_iter_s"]
    out["compile"] = {"compile_s": round(extra, 1), "saved_s_per_iter": round(saved, 4),
                      "pays_off_after_epochs_of_6000": round(extra / saved * c["config"]["batch_size"] / 6000, 3)
                      if saved > 0 else None}
except (OSError, KeyError) as exc:
    out["compile"] = f"not measured ({exc})"
json.dump(out, open(os.path.join(sys.argv[2], "steps.json"), "w"), indent=1); print(json.dumps(out))
EOF
rm -rf "$WORK"
