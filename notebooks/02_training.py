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
# papermill -k maskcycle notebooks/02_training.ipynb OUT.ipynb -p params_file params/demo/baseline.yaml -p overrides "n_epochs=1 lr=0.001" -p out_dir results/scratch/baseline
# ```
#
# or many at once with `maskcycle sweep params/demo/*.yaml --out results/demo/sweep`. Domain A = unmasked faces, B = masked faces; G_AB puts a mask on, G_BA takes it off. Rerunning into the same `out_dir` resumes from its checkpoint.

# %% tags=["parameters"]
params_file = 'params/demo/baseline.yaml'  # the trial's settings (TrialConfig fields); name = file stem
overrides = []  # 'key=value' settings over the file: a list, or one string "n_epochs=1 lr=0.001"
out_dir = 'results/scratch/baseline'  # the trial folder (config, run.json, losses, samples, checkpoints)

# %% [markdown]
# ## Configuration
# The params file and overrides become a validated `TrialConfig` (unknown or ill-typed values stop here); the trainer writes the resolved config to `config.yaml` once it has checked that the folder's earlier run (if any) has the same settings.

# %%
# %matplotlib inline
from pathlib import Path

import yaml

from maskcycle.config import TrialConfig
from maskcycle.training import figures
from maskcycle.training.trainer import train

cfg = TrialConfig.from_params(params_file, overrides)
out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
print(f'trial folder: {out.resolve()}')
print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))

# %% [markdown]
# ## Train
# `train` writes `run.json` (git commit and dirty flag, package versions, device, start/end, status), `losses.csv`, per-epoch sample grids and checkpoints; it resumes when the folder already holds `checkpoints/latest.pt`. With `nproc` > 1 it runs DDP through `torchrun` in a child process.

# %%
# nproc > 1 (DDP): torchrun in a child process, never multiprocessing inside this kernel
train(cfg, out, progress=False)
print((out / 'run.json').read_text())

# %% [markdown]
# ## Losses
# Mean of each loss per epoch (the family's `LOSS_NAMES`). CycleGAN: D_A/D_B discriminators; G_AB/G_BA adversarial; cycle_A/cycle_B cycle consistency; idt_AB/idt_BA identity. CUT/FastCUT: G_GAN, D_real, D_fake, G, NCE (PatchNCE of input vs output), NCE_Y (identity term). pix2pix: G_GAN, G_L1, D_real, D_fake.

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
