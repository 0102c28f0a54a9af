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
# # 01 Data curation
#
# Domain A = unmasked faces (FFHQ), domain B = masked faces (MaskedFace-Net, or the embedded demo set drawn in the same layout by `maskcycle demo-data`). Every raw image gets a verdict with its reason in `manifest.csv`: unreadable, too small, not RGB, mask placement, face count (OpenCV Haar cascade), sharpness (variance of the Laplacian), manual exclusion. The kept images are split identity-disjointly (MaskedFace-Net image N is FFHQ image N with a mask, so an id used in A never appears in B) and written resized with a decoded cache that the trainer reads.
#
# ```
# papermill -k maskcycle notebooks/01_data_curation.ipynb OUT.ipynb -p out_dir data/curated -p ffhq_root /data/ffhq -p maskedfacenet_root /data/MaskedFace-Net
# ```
#
# Rerunning resumes: files already measured (same path, size, mtime) are not decoded again.

# %% tags=["parameters"]
# Parameters (literals only; papermill -p overrides)
ffhq_root = 'results/demo/raw/ffhq'                    # FFHQ root: images1024x1024/ or thumbnails128x128/
maskedfacenet_root = 'results/demo/raw/maskedfacenet'  # MaskedFace-Net root: CMFD/ and/or IMFD/
curated_root = ''        # an already-curated trainA/trainB/testA/testB folder instead of the raw roots
out_dir = 'results/demo/curated'
n_train = 200            # per domain (the study: 6000)
n_test = 50              # per domain (the study: 1000)
load_size = 72           # side of the curated images (the study: 286)
seed = 0
min_size = 0             # smallest accepted side (0: use load_size)
sharpness_min = 8.0      # variance of the Laplacian at work_size
max_faces = 1            # images with more detected faces are rejected
require_face = False     # also reject images where the detector finds no face
placements = ['correct']  # MaskedFace-Net classes kept; add 'nose_uncovered', 'chin_uncovered', ...
work_size = 256          # side at which sharpness and faces are measured
exclusions = 'params/curation/manual_exclusions.csv'
workers = 0              # processes (0: all cores)
sheet_n = 16             # images per contact sheet


# %% [markdown]
# ## Run the curation
# Heavy work runs in a subprocess (`maskcycle curate`, a process pool over all cores), not inside this kernel.

# %%
# %matplotlib inline
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import Image, display

from maskcycle.config import field_flags
from maskcycle.data import report
from maskcycle.data.curate import Settings

# The parameters above are the curation Settings' fields: validated here, passed on as the same flags.
settings = Settings(n_train=n_train, n_test=n_test, load_size=load_size, seed=seed, min_size=min_size,
                    sharpness_min=sharpness_min, max_faces=max_faces, require_face=require_face,
                    placements=tuple(placements), work_size=work_size, exclusions=exclusions)
cmd = [sys.executable, '-m', 'maskcycle', 'curate', '--out', out_dir, '--workers', str(workers), *field_flags(settings)]
cmd += ['--curated', curated_root] if curated_root else ['--ffhq', ffhq_root, '--maskedfacenet', maskedfacenet_root]
print(' '.join(cmd))
proc = subprocess.run(cmd, capture_output=True, text=True)
print(proc.stdout[-3000:])
if proc.returncode:
    raise RuntimeError(f'curation failed:\n{proc.stderr[-3000:]}')
out = Path(out_dir)
m = report.load(out)
info = json.loads((out / 'curation.json').read_text())
print(json.dumps(info['timing'], indent=1))

# %% [markdown]
# ## Reasons
# Images per reason and domain (an image with several reasons counts under each; `placement:*` are masked images whose class was not asked for).

# %%
rc = report.reason_counts(m)
display(rc.pivot(index='reason', columns='domain', values='images').fillna(0).astype(int))
fig, ax = plt.subplots(figsize=(8, 4))
sns.barplot(data=rc, y='reason', x='images', hue='domain', ax=ax)
ax.set_xscale('log'); ax.set_title('images per reason'); plt.tight_layout(); plt.show()

# %% [markdown]
# ## Mask placement
# MaskedFace-Net's classes, read from the file suffix: `correct` (CMFD), and the incorrectly worn IMFD classes, kept only when listed in `placements`.

# %%
pc = report.placement_counts(m)
display(pc)
fig, ax = plt.subplots(figsize=(7, 3))
sns.barplot(data=pc.melt(id_vars='placement', value_vars=['images', 'kept', 'used']), y='placement', x='value', hue='variable', ax=ax)
ax.set_title('masked images per placement class'); plt.tight_layout(); plt.show()

# %% [markdown]
# ## Sharpness
# Variance of the Laplacian of a 256-px grayscale copy; images left of the dashed threshold are rejected as blurry.

# %%
d = m[m.sharpness.notna() & (m.sharpness > 0)]
fig, ax = plt.subplots(figsize=(8, 3.5))
sns.histplot(data=d, x='sharpness', hue='domain', bins=60, log_scale=True, element='step', ax=ax)
ax.axvline(sharpness_min, color='k', ls='--')
ax.set_title(f'sharpness (variance of the Laplacian); dashed: threshold {sharpness_min}')
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Face detector
# OpenCV's frontal-face Haar cascade (shipped in opencv-python-headless 4.x). Hit rate = share of measured images with at least one face found. Images with two or more faces are rejected; images with none are rejected only with `require_face` (Haar cascades, trained on bare faces, miss many masked ones).

# %%
display(report.hit_rates(m))
truth = Path(ffhq_root).parent / 'demo_truth.csv'
if not curated_root and truth.exists():
    print('The demo set plants defects; what the filters caught:')
    display(report.planted_defects(m, truth))

# %% [markdown]
# ## Contact sheets
# Kept images and rejected ones per first reason, for a quick review by eye. Add what should not be used to the manual exclusion list (`id,reason[,domain]`) and rerun.

# %%
sheets = report.review_sheets(m, out, n=sheet_n, seed=seed)
for name, path in sheets.items():
    print(name, path)
    display(Image(filename=str(path)))

# %% [markdown]
# ## Split
# Per domain: train / test (written), unused (kept but not needed, or identity used in the other domain) and rejected. `pairs_test.csv` lists each test image's counterpart in the other raw set.

# %%
display(report.split_table(m))
print(json.dumps(info['counts']), '| pairs:', sum(1 for _ in open(out / 'pairs_test.csv')) - 1)
print('cache:', info['cache'])
