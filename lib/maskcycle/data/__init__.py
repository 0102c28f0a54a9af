"""Data: the study's first stage. Turn raw face photos (FFHQ, MaskedFace-Net) or the embedded demo
set into a curated folder (trainA/trainB/testA/testB, `manifest.csv`, `pairs_test.csv`, training
pairs, the decoded cache), and serve that folder to the trainer as reproducible batches.

Start reading at `curate.py` (`curate()`, what notebook 01 and `maskcycle curate` call), then
`unpaired.py` (what an epoch draws).

- curate.py: curation: filters with recorded reasons, identity-disjoint split, the curated folders.
- readers.py: readers for the raw layouts (FFHQ, MaskedFace-Net, an already-curated folder).
- measures.py: per-image measurements and the thresholds that turn them into exclusion reasons.
- faces.py: dlib faces: detection, landmarks, FFHQ alignment, paste-back, identity descriptors.
- pair_checks.py: true pairs: the mask region, and the checks a test pair passes before it is listed.
- segment.py: where the mask is on a face without a pair (for compositing), and its IoU against pairs.
- demo.py: the embedded demo set: drawn face portraits with and without masks.
- images.py: listing, decoding and resizing images (guarded decode, bicubic as the reference).
- cache.py: the decoded uint8 cache, memory-mapped every epoch.
- unpaired.py: unpaired training batches with the reference sampling, per-epoch seeded.
- paired_batches.py: paired training batches for pix2pix (one crop and flip for both images).
- parallel.py: a process-pool map with a progress bar for the per-image steps.
- report.py: tables, charts and contact sheets for reviewing a curation (notebook 01).
"""
