"""Evaluation: score trained generators on the curated test sets: FID/KID per direction, paired
metrics against true counterparts, face-feature distances and identity; per checkpoint (FID over
training) and for a whole sweep (its results table, which notebook 03 shows).

Start reading at `evaluate.py` (`evaluate_sweep`, what notebook 03 and `maskcycle evaluate` call),
then `metrics.py` (the list of per-direction metrics: adding one is a function plus one line).

- evaluate.py: scoring per checkpoint, caching, the sweep's table (runs side by side), the CLI.
- held_out.py: the test and validation sets and their known pairs, read and measured once.
- metrics.py: METRICS, the per-direction metrics evaluation, summary.csv and notebook 03 read.
- fid.py: FID and KID through torch-fidelity, the real sets' features reused.
- fid_protocol.py: the FID protocol, stated and selectable (resizing, image format).
- selection.py: which epoch of a trial is reported (best on the validation split).
- statistics.py: intervals over seeds and test images, differences to a baseline, corrected p-values.
- comparison.py: the study's answer per trial, direction and metric -> `<sweep>/comparison.csv`.
- paired_metrics.py: PSNR and SSIM against the true counterpart, whole image and mask region.
- facedist.py: face-feature distances and identity (dlib descriptors of aligned crops).
- translate.py: translate arrays, aligned crops and real photos with a trained generator.
- baselines.py: crops through the non-learned families, and mask-guided compositing of a learned one.
- external.py: score folders of fakes made elsewhere (no checkpoints).
- family_table.py: every family side by side per direction, and which model beats which baseline.
- figures.py: the tables and figures of notebook 03; answer_figures.py: those that open it (forest
  plot, epoch choice, FID protocol, sample-count bias).
"""
