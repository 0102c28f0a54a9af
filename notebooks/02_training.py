# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python (maskcycle)
#     language: python
#     name: maskcycle
# ---

# %% [markdown]
# # 02 Training: one trial (CycleGAN, CUT, FastCUT or pix2pix)
#
# One trial = one params YAML. Run it headless with
#
# ```
# papermill -k maskcycle notebooks/02_training.ipynb OUT.ipynb -f params/demo/baseline.yaml -p out_dir results/scratch/baseline
# ```
#
# or many at once with `maskcycle sweep params/demo/*.yaml --out results/demo/sweep`. Domain A = unmasked faces, B = masked faces; G_AB puts a mask on, G_BA takes it off. Rerunning into the same `out_dir` resumes from its checkpoint.

# %% tags=["parameters"]
# Parameters: every TrialConfig field (literal defaults; papermill -f params/...yaml overrides)
name = 'trial'
model = 'cyclegan'
direction = 'AB'
dataroot = 'data/curated'
max_dataset_size = 0
netG = 'resnet_9blocks'
netD = 'basic'
ngf = 64
ndf = 64
n_layers_D = 3
norm = 'instance'
init_type = 'normal'
init_gain = 0.02
use_dropout = False
gan_mode = 'lsgan'
lambda_A = 10.0
lambda_B = 10.0
lambda_identity = 0.5
cycle_loss = 'l1'
lambda_gp = 10.0
pool_size = 50
lambda_GAN = 1.0
lambda_NCE = None
nce_idt = None
flip_equivariance = None
nce_layers = '0,4,8,12,16'
num_patches = 256
nce_T = 0.07
netF_nc = 256
no_antialias = False
no_antialias_up = False
lambda_L1 = 100.0
optimizer = 'adam'
lr = 0.0002
beta1 = 0.5
beta2 = 0.999
momentum = 0.0
weight_decay = 0.0
lr_policy = 'linear'
lr_step_at = 'start'
lr_decay_iters = 50
plateau_metric = 'reference'
n_epochs = 100
n_epochs_decay = 100
preprocess = 'resize_and_crop'
load_size = 286
crop_size = 256
no_flip = False
batch_size = 1
serial_batches = False
num_threads = 4
save_epoch_freq = 5
save_latest_freq = 5000
log_freq = 100
n_samples = 4
seed = 0
seeds = 1
device = 'auto'
precision = 'fp32'
channels_last = False
compile = False
compile_mode = 'default'
batched_passes = False
nproc = 1
nnodes = 1

# Where this trial's files go (config.yaml, run.json, losses, samples, checkpoints)
out_dir = 'results/scratch/trial'

# %% [markdown]
# ## Configuration
# The parameters become a validated `TrialConfig` (unknown or ill-typed values stop here); the trainer writes the resolved config to `config.yaml` once it has checked that the folder's earlier run (if any) has the same settings.

# %%
# %matplotlib inline
from pathlib import Path

import yaml

from maskcycle.config import TrialConfig, field_names
from maskcycle.training import figures
from maskcycle.training.trainer import train_or_launch

cfg = TrialConfig.from_dict({k: globals()[k] for k in field_names()}, source='notebook parameters')
out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
print(f'trial folder: {out.resolve()}')
print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))

# %% [markdown]
# ## Train
# `train` writes `run.json` (git commit and dirty flag, package versions, device, start/end, status), `losses.csv`, per-epoch sample grids and checkpoints; it resumes when the folder already holds `checkpoints/latest.pt`. With `nproc` > 1 it runs DDP through `torchrun` in a child process.

# %%
# nproc > 1 (DDP): torchrun in a child process, never multiprocessing inside this kernel
train_or_launch(cfg, out, progress=False)
print((out / 'run.json').read_text())

# %% [markdown]
# ## Losses
# Mean of each loss per epoch. CycleGAN: D_A/D_B discriminators; G_AB/G_BA adversarial; cycle_A/cycle_B cycle consistency; idt_AB/idt_BA identity. CUT/FastCUT: G_GAN, D_real, D_fake, G, NCE (PatchNCE of input vs output), NCE_Y (identity term). pix2pix: G_GAN, G_L1, D_real, D_fake.

# %%
fig = figures.loss_curves(out, save=out / 'figures' / 'loss_curves.png')

# %% [markdown]
# ## Fakes by epoch
# The same test images through training: fake B should gain a mask, fake A should lose it.

# %%
fig = figures.fakes_by_epoch(out, save=out / 'figures' / 'fakes_by_epoch.png')

# %% [markdown]
# ## Final samples
# Rows: real A, fake B (mask on), reconstructed A, real B, fake A (mask off), reconstructed B. A one-way model (CUT, FastCUT, pix2pix) learns one direction; the rows it cannot fill are grey.

# %%
fig = figures.final_samples(out, save=out / 'figures' / 'final_samples.png')

# %% [markdown]
# ## Speed

# %%
figures.throughput(out)
