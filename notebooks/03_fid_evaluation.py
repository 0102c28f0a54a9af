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
# # 03 FID evaluation: the sweep's results
#
# **The answer first**: which settings change how well CycleGAN puts masks on (A->B) and takes them off (B->A), beyond seed noise. Every trial runs at several seeds (`seeds`); each run's epoch is **chosen on the validation split** (valA/valB, identity-disjoint from train and test) and only that epoch's **test** numbers are reported. Per trial, direction and metric: the mean over seeds with a 95 % interval, the difference to the baseline trial with its interval, and a Holm-corrected p-value (`<sweep>/comparison.csv`, maskcycle.evaluation.comparison).
#
# For every finished run of a sweep: G_AB translates all of test A and G_BA all of test B (at the trial's crop size), the fakes are kept as PNG under `<run>/eval/`, and
#
# - **FID_AB** = FID(G_AB(test A), real test B), **FID_BA** = FID(G_BA(test B), real test A), and KID, with torch-fidelity's standard Inception;
# - **paired metrics**: PSNR and SSIM of each translation against its true counterpart (masked face N is FFHQ face N with a mask drawn on), over the whole image and over the mask region;
# - **FID over training** from the saved epoch checkpoints;
# - **face features, always (offline too)**: FD_face and KD_face, the Frechet and kernel distances between dlib's 128-D face descriptors of the fakes and of the real target set, and **identity**: whether each fake is still the same person (dlib's 0.6 threshold) as its input (G_AB) or its true unmasked face (G_BA, from `pairs_test.csv`).
#
# Lower FID/KID is better; higher PSNR/SSIM is better. The same from a shell: `maskcycle evaluate --sweep results/demo/sweep --curated results/demo/curated`.

# %% tags=["parameters"]
# Parameters (literals only; papermill -p overrides)
sweep_dir = 'results/demo/sweep'  # trial folders of a finished sweep
curated_dir = 'results/demo/curated'  # testA/, testB/, pairs_test.csv; empty: the dataroot of each trial
every_k_epochs = None  # FID over training: None every saved epoch, 0 final only, K every K-th epoch
inception_weights = ''  # empty: $MASKCYCLE_INCEPTION_WEIGHTS, then the torch hub cache
inception_download = True  # fetch the Inception weights once into the hub cache when online
feature_extractor = 'inception-v3-compat'  # the standard FID network of torch-fidelity
device = 'auto'
batch_size = 16
fid_resize = 'legacy'  # legacy: torch-fidelity's TF-compatible resize inside Inception (published FIDs); clean: antialiased bicubic to 299 first
fid_ref_n = 1000  # FID_<dir>_ref: FID at this many images of each set (the study: 1000; the demo's test sets hold 50)
baseline = 'baseline'  # the trial every other is compared with
reference_dir = ''  # a reference-implementation checkpoint folder (<epoch>_net_G_A.pth ...) to score too
reference_settings = {}  # its TrialConfig settings, e.g. crop_size 256, norm instance
composite_variants = True  # also score every learned trial with mask-guided compositing (<trial>+composite)
workers = 0  # runs scored side by side on a CPU (processes): 0 one per core, at most 4; 1 one after another


# %% [markdown]
# ## Evaluate
# Results already computed for an unchanged checkpoint are reused. Without the Inception weights FID/KID are marked unavailable (the reason is printed and stored in each trial's `eval/metrics.json`); everything else is still computed.

# %%
# %matplotlib inline
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from maskcycle.evaluation import answer_figures, comparison, evaluate, figures

pd.set_option('display.width', 200)
pd.set_option('display.max_columns', 40)
sweep = Path(sweep_dir)
figure_dir = sweep / 'eval_figures'
table = evaluate.evaluate_sweep(sweep, curated_dir or None, every_k_epochs=every_k_epochs,
                                inception_weights=inception_weights or None,
                                feature_extractor=feature_extractor, download=inception_download,
                                device=device, batch_size=batch_size, progress=False,
                                composite_variants=composite_variants, fid_resize=fid_resize,
                                fid_ref_n=fid_ref_n, baseline=baseline, workers=workers)
reasons = sorted(set(table['fid_unavailable_reason'].dropna())) if 'fid_unavailable_reason' in table else []
fid_available = bool(len(table)) and 'FID_AB' in table and table['FID_AB'].notna().any()
if fid_available:
    display(Markdown(f'**FID/KID computed** with `{feature_extractor}`.'))
else:
    display(Markdown('**FID/KID unavailable.** ' + (' '.join(reasons) or 'no trial was evaluated')))
print(f'{table["trial"].nunique() if len(table) else 0} trial(s), {len(table)} run(s); '
      f'{int(table["evaluated"].sum()) if len(table) else 0} evaluated; table: {sweep / "summary.csv"}')

# %% [markdown]
# ## The answer
# Per direction and metric (FID when the Inception weights are there, else PSNR over the mask region against the true counterpart; and FD_face, the Frechet distance of dlib face descriptors): the mean over seeds with its 95 % interval, the difference to the baseline with its 95 % interval, the Holm-corrected p-value (within each metric and direction, over the trials compared with the baseline) and whether the difference is beyond seed noise (p_holm < 0.05). The kind of each interval is printed below the table: a Student-t interval over seeds, or, for a trial run at one seed, the within-run interval from resampling the test images (that says how much the test images move the number, not how much a rerun would).

# %%
comp_path = sweep / comparison.COMPARISON
comp = pd.read_csv(comp_path) if comp_path.is_file() else pd.DataFrame(columns=comparison.COLUMNS)
display(comparison.answer_table(comp))
print('intervals:', '; '.join(comparison.interval_kinds(comp)) or 'none',
      '| differences:', '; '.join(sorted(set(comp['test'].dropna()))) or 'none')
if 'refused' in comp and comp['refused'].notna().any():
    print('refused (seeds disagree in settings other than the seed):')
    for r in comp[comp['refused'].notna()].itertuples():
        print(f'  {r.trial}: {r.refused}')
print(f'all metrics: {comp_path}')

# %% [markdown]
# ### Forest plot per direction, the study's published numbers beside ours
# Each trial's mean with its 95 % interval; the dashed line is our baseline. For FID the study's published best (17.07 A->B, 48.39 B->A) and its range over its trials are drawn beside ours (its FID script, sample count and image size are unknown, so compare with care: see the notes at the end). Without FID the plot shows the paired PSNR over the mask region, which the study did not publish.

# %%
fig = answer_figures.forest_plot(comp, save=figure_dir / 'forest.png')

# %% [markdown]
# ## How each run's epoch was chosen
# The reported epoch is the one that scores best on the validation split (FID, else PSNR over the mask region, averaged over the directions the trial learns); its test numbers are the ones above. The best test score over all saved epochs is shown beside it, labelled **optimistic**: it was picked on the test set itself.

# %%
display(answer_figures.selection_table(table) if len(table) else 'no runs')

# %% [markdown]
# ## FID protocol
# What every FID compared: the resize before Inception (`legacy` or `clean`), the number, size and file format of the generated and the real images (fakes are re-encoded as JPEG at the real set's quality when the real set is JPEG), and FID at the fixed reference size (`fid_ref_n` images of each set; empty when a set is smaller).

# %%
proto = answer_figures.protocol_table(table) if len(table) else pd.DataFrame()
display(proto if len(proto) else Markdown('No FID was computed, so there is no FID protocol to show.'))

# %% [markdown]
# ## Sample-count bias
# The Frechet distance of the reported epoch on random subsets of n test images (FID when measured, else FD_face): the estimate is biased upwards, more so with fewer images, so numbers are comparable only at the same n (hence FID at a fixed reference size beside FID at the test-set size).

# %%
bias = answer_figures.bias_curves(sweep)
fig = answer_figures.bias_plot(bias, save=figure_dir / 'sample_count_bias.png')
display(answer_figures.bias_summary(bias) if len(bias) else 'no curves')

# %% [markdown]
# ## Results table
# One row per run (trial and seed): the hyper-parameters the sweep varies, status, epochs, training wall time (s), FID and KID per direction (the best per direction marked `*`), and the mean paired metrics (`psnr_BA` = G_BA against the true unmasked face; `_mask` = over the mask region). Also written to the sweep's `summary.csv` (maskcycle.results: the one per-trial table).

# %%
display(figures.display_table(table))

# %% [markdown]
# ## Every family side by side
# Per direction: the non-learned baselines (`do_nothing`: output = input; `template`: a drawn mask warped onto the lower face from dlib's landmarks; `inpaint`: the segmented mask filled by OpenCV inpainting), each learned model, and the same model with mask-guided compositing (`<trial>+composite`: B->A keeps every input pixel outside the dilated, feathered predicted mask, A->B changes only the lower face). Columns: FID/KID (when the Inception weights are there), FD_face/KD_face, identity rate, paired PSNR/SSIM over the whole image and the mask region, and **mask IoU** (the region a method changed against where the true pair differs; only for methods that act in a region). Then, per learned model and baseline, the metrics on which the learned model's mean is better. Plain means: without intervals a small difference is no evidence.

# %%
from maskcycle.evaluation import family_table

for d in ('AB', 'BA'):
    display(Markdown(f'### {figures.DIRECTIONS[d]}'))
    side = family_table.family_table(table, d)
    if side.empty:
        print('no trial translates this direction')
        continue
    display(side)
    display(family_table.beats(table, d))
    display(Markdown(family_table.verdict(table, d)))

# %% [markdown]
# ## Face features and identity
# Per trial and direction, for the final checkpoint: **FD_face** / **KD_face** (lower is better; dlib descriptors, so no download and always available, but not comparable with FID), the **identity rate** (share of fakes within dlib's 0.6 of the face they must still look like, Wilson 95 % interval), the **median descriptor distance** (bootstrap 95 % interval), and the **chance rate**: the same on mismatched pairs, what a translation that forgot who it was would score. Fakes where the detector finds no face are described at the fixed FFHQ-aligned face box (counted in the last column).

# %%
display(figures.face_table(table) if len(table) else 'no trials')

# %% [markdown]
# ## Beside the study's published numbers
# The study's best FID_AB 17.07 and FID_BA 48.39 and its ranges over its trials, as published (its FID script, sample count and image size are unknown; see the notes at the end before comparing).

# %%
display(figures.published_comparison(table))

# %% [markdown]
# ## Per direction
# FID per trial; the grey band is the study's published range and the dashed line its published best. Without FID the charts show the paired PSNR over the mask region instead (higher is better).

# %%
fig = figures.direction_bars(table, save=figure_dir / 'fid_per_direction.png')

# %% [markdown]
# ## FID over training
# FID per direction at the saved epoch checkpoints, one line per trial.

# %%
curves = evaluate.fid_curves(sweep)
fig = figures.training_curves(curves, save=figure_dir / 'fid_over_training.png')
display(curves.drop(columns=[c for c in curves.columns if c.endswith('_std')]).round(3))

# %% [markdown]
# ## Paired metrics
# For test images whose true counterpart is known: PSNR/SSIM of G_BA(masked) against the true face and of G_AB(face) against the true masked face, over the whole image and over the mask region (where the real pair differs). `*_input` is the untranslated input against the same truth: what doing nothing scores. A translation earns its keep inside the mask region.

# %%
pairs = evaluate.paired_table(sweep)
if 'n_pairs_skipped' in table and table['n_pairs_skipped'].fillna(0).gt(0).any():
    print('pairs left out, counterpart not decodable (see eval/metrics.json):',
          table.set_index('trial')['n_pairs_skipped'].to_dict())
if 'n_pairs_flagged' in table and table['n_pairs_flagged'].fillna(0).gt(0).any():
    print("pairs left out, they failed curation's pair checks (pairs_test.csv, column check):",
          table.set_index('trial')['n_pairs_flagged'].to_dict())
if pairs.empty:
    reasons = set(table['paired_unavailable_reason'].dropna()) if 'paired_unavailable_reason' in table else set()
    print('No paired metrics: no test image has a known, checked counterpart'
          + (f" ({'; '.join(sorted(map(str, reasons)))})" if reasons else '') + '. The other sections stand without them.')
else:
    display(figures.paired_summary(pairs))
    fig = figures.paired_plot(pairs, save=figure_dir / 'paired_psnr.png')

# %%
from maskcycle.results import best_trial

evaluated = table[table['evaluated']] if len(table) else table
# per direction, the best run that translates it (results.best_trial: FID, else PSNR in the mask, else FD_face)
for d in ('BA', 'AB'):
    rows = evaluated[evaluated['directions'].fillna('').str.contains(d)] if len(evaluated) else evaluated
    if not len(rows):
        continue
    best, key, _ = best_trial(rows, d)
    folder = rows.loc[best if best is not None else rows.index[0], 'run']
    print(f'{d} examples from {folder} (best by {key or "nothing measured: the first run"})')
    fig = figures.example_pairs(sweep / folder, n=4, direction=d, save=figure_dir / f'examples_{d}.png')

# %% [markdown]
# ## Reference-implementation checkpoints
# A run of the reference CycleGAN (the study's code) scored with the same pipeline: its `<epoch>_net_G_A.pth` is our G_AB, `_net_G_B.pth` our G_BA. Set `reference_dir` (and `reference_settings` for its architecture and crop size).

# %%
if reference_dir:
    from maskcycle.config import TrialConfig
    scorer = evaluate.open_scorer(feature_extractor, inception_weights or None, inception_download, device,
                                  fid_resize, fid_ref_n)
    ref_cfg = TrialConfig().replace(**reference_settings)
    ref = evaluate.evaluate_reference(reference_dir, curated_dir, ref_cfg, scorer=scorer,  # epoch chosen on val if any
                                      every_k_epochs=every_k_epochs, device=device, progress=False)
    display(pd.Series({k: v for k, v in ref.items() if not isinstance(v, (list, dict))}).to_frame('value'))
else:
    print('no reference_dir given')

# %% [markdown]
# ## What FID is sensitive to (read before comparing numbers)
#
# - **Sample count.** FID is a biased estimator: with fewer images it comes out higher, and the bias
#   depends on the generator (see "Sample-count bias" above). Compare FIDs only at the same number
#   of test images (`FID_<dir>_ref` fixes one). The demo's test sets hold a few dozen images, the
#   study's about a thousand, so the demo's absolute FIDs are not comparable with the published
#   ones. KID is unbiased and is the better guide on small sets.
# - **Choosing on the test set.** Picking the best epoch (or trial) by its test FID flatters it;
#   here each run's epoch is chosen on the validation split, and the test-set best is shown only
#   as the optimistic number it is.
# - **JPEG vs PNG.** Compression artefacts move Inception features; FID between JPEG reals and PNG
#   fakes measures part compression, not translation. Here both sides come from the same pipeline:
#   real test images are decoded once, resized to the trial's crop size (bicubic) and kept as uint8
#   arrays; fakes are kept lossless (PNG). When a real set is stored as JPEG the fakes are
#   re-encoded as JPEG at its quality before Inception (the protocol table says so). (MaskedFace-Net
#   itself is distributed as JPEG; curation decodes and downsizes it to PNG, so its real test images
#   carry that compression on both the real and the input side.)
# - **Resizing.** Inception sees 299 x 299; torch-fidelity upsamples with TensorFlow-1-compatible
#   bilinear interpolation, as the original FID code (`fid_resize = 'legacy'`); `'clean'` resizes
#   with antialiased bicubic first, as clean-fid. Other resize implementations (PIL vs torch,
#   with or without antialiasing) shift FID by several points (Parmar et al., "On Aliased Resizing
#   and Surprising Subtleties in GAN Evaluation", CVPR 2022). The image size the comparison is made
#   at (128 vs 256 px) changes it too: both sides here are at the trial's crop size.
# - **The network and its weights.** Published FIDs use the 2015 TensorFlow Inception
#   (`weights-inception-2015-12-05-6726825d.pth` in torch-fidelity); torchvision's ImageNet
#   Inception gives different numbers. Nothing else is ever put in its place here: without the file,
#   FID is reported as unavailable.
# - **The published numbers.** The study's FID script was never published; its sample count, image
#   size, file format and resize are unknown. Compare rankings across its trials, not absolute values.
#

# %% [markdown]
# ## Files
# - `<sweep>/comparison.csv`: the answer (every metric, per trial and direction, with intervals and corrected p)
# - `<sweep>/summary.csv`: the results table (one row per run)
# - `<run>/eval/metrics.json`: the reported epoch's scores with within-run intervals, `selection` (how the epoch was chosen, `val_by_epoch`), `by_epoch` (test scores over training), FID's protocol, why FID is unavailable if it is
# - `<trial>/eval/paired.csv`: paired metrics per test pair
# - `<trial>/eval/fakes_AB/`, `fakes_BA/`: the translated test sets (PNG)
# - `<sweep>/eval_figures/`: the figures
