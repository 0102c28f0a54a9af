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
n_val = 25               # per domain, picks each trial's epoch (the study: 500)
load_size = 72           # side of the curated images (the study: 286)
seed = 0
min_size = 0             # smallest accepted side (0: use load_size)
allow_upscale = False    # accept images smaller than load_size and upscale them
sharpness_min = 8.0      # absolute floor of the blur threshold (variance of the Laplacian at work_size)
sharpness_tail = 3.0     # per-domain threshold: median - k robust sigmas of log sharpness (0: floor only)
detector = 'hog'         # face counter: 'hog', 'cnn' (dlib, face module) or 'haar' (OpenCV)
max_faces = 1            # images with more detected faces are rejected
require_face = False     # also reject images where the detector finds no face
placements = ['correct']  # MaskedFace-Net classes kept; add 'nose_uncovered', 'chin_uncovered', ...
work_size = 256          # side at which sharpness and faces are measured
exclusions = 'params/curation/manual_exclusions.csv'
pairs = ''               # curated folders only: CSV a,b of files showing one person
pair_share_min = 0.05    # plausible mask share of a pair's image
pair_share_max = 0.45
pair_faces = True        # check pairs with dlib: same upper face, nose and mouth inside the mask
hit_rate_detectors = ['haar', 'hog']  # detectors compared on a sample (add 'cnn': ~1-2 s per image on CPU)
hit_rate_n = 24          # images per domain in that sample
workers = 0              # processes (0: all cores)
sheet_n = 16             # images per contact sheet


# %% [markdown]
# ## Run the curation
# In this kernel, as `maskcycle curate` runs it (its process pool measures the images over `workers` cores).

# %%
# %matplotlib inline
import dataclasses
import json
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import Image, display

from maskcycle.data import report
from maskcycle.data.curate import Settings, curate

# The parameters above named after the curation Settings' fields are those settings (validated here).
settings = Settings(**{f.name: globals()[f.name] for f in dataclasses.fields(Settings)} | {'placements': tuple(placements)})
roots = dict(curated=curated_root) if curated_root else dict(ffhq=ffhq_root, maskedfacenet=maskedfacenet_root)
curate(out_dir, settings=settings, workers=workers, progress=False, **roots)
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
# Variance of the Laplacian of a 256-px grayscale copy. The threshold is set per domain from its own distribution (median minus `sharpness_tail` robust sigmas of log sharpness: drawn faces and real photos differ by orders of magnitude) and never below the absolute floor `sharpness_min`; images left of their domain's line are rejected as blurry.

# %%
d = m[m.sharpness.notna() & (m.sharpness > 0)]
fig, ax = plt.subplots(figsize=(8, 3.5))
sns.histplot(data=d, x='sharpness', hue='domain', hue_order=['A', 'B'], bins=60, log_scale=True, element='step', ax=ax)
colors = dict(zip('AB', sns.color_palette()[:2]))
for dom, thr in info['sharpness_threshold'].items():
    ax.axvline(thr, color=colors[dom], ls='--', label=f'threshold {dom}: {thr:g}')
ax.axvline(sharpness_min, color='k', ls=':', label=f'floor: {sharpness_min:g}')
ax.legend(); ax.set_title('sharpness (variance of the Laplacian)')
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Face detector
# Faces are counted with `detector` (dlib HOG by default, from the face module). A masked image with an FFHQ counterpart is counted on the counterpart (`faces_source`): the mask hides only the main face, and detectors miss many masked faces. Images with two or more faces are rejected; images with none only with `require_face`. Below: the decisive count, then each detector's hit rate (share of images with >= 1 face) on the same sample of kept images per domain, counted on the image itself.

# %%
display(report.hit_rates(m))
display(report.detector_hit_rates(m, hit_rate_detectors, n=hit_rate_n, seed=seed))
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
# ## Pairs
# Each test pair (a masked image and its unmasked counterpart) is checked before evaluation trusts it: the region where they differ must be a plausible mask (`pair_share_min`..`pair_share_max` of the image), and where dlib finds the face, the upper faces (mask region greyed out) must be one person (descriptor distance < 0.6) and, for a correctly worn mask, nose and mouth landmarks must lie in the region. Failing pairs are flagged in `pairs_test.csv` (column `check`) and left out of paired metrics. The landmarks also give the placement class independently of the file name.

# %%
display(report.pair_checks(out))
print(json.dumps(info['pair_checks']), '| identities:', info['identities'])

# %% [markdown]
# ## Split
# Per domain: train / test (written), unused (kept but not needed, or identity used in the other domain) and rejected. `pairs_test.csv` lists each test image's counterpart in the other raw set.

# %%
display(report.split_table(m))
print(json.dumps(info['counts']), '| pairs:', sum(1 for _ in open(out / 'pairs_test.csv')) - 1)
print('cache:', info['cache'])
