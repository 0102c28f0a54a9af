"""Training: run one trial (a TrialConfig) to checkpoints, losses.csv, samples and metrics.json, on
one process, several (DDP) or a SLURM cluster, with exact resume; and run a sweep of trials.

Start reading at `trainer.py`: `train()` reads as record -> start -> epoch loop -> end, and
`_run_epoch` hands each batch to the family's `train_step` (models/families.py).

- trainer.py: the trainer: epochs, lr schedule, logging, sample grids, checkpoints, exact resume.
- errors.py: how a run fails on its own (reported as "failed", last good checkpoint kept).
- ddp.py: one trial on several processes (DistributedDataParallel); launch.py starts torchrun.
- sweep.py: a sweep: notebook 02 run through papermill per params file, and its summary.csv.
- slurm.py: sweeps on a SLURM cluster through submitit (one array task per trial).
- bench.py: training speed of the plain, fast and batched paths, interleaved in one process.
- figures.py: the figures of one trial folder that notebook 02 shows.
"""
