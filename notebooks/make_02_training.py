"""Write notebooks/02_training.ipynb (no outputs). Rerun after adding a TrialConfig field:

    python notebooks/make_02_training.py

The parameters cell gets one literal per TrialConfig field, equal to its default
(tests/test_notebook02.py checks that), plus `out_dir`.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

from maskcycle.config import defaults
from maskcycle.nbbuild import study_notebook

HERE = Path(__file__).resolve().parent


def parameters_source() -> str:
    lines = ["# Parameters: every TrialConfig field (literal defaults; papermill -f params/...yaml overrides)"]
    lines += [f"{key} = {value!r}" for key, value in defaults().items()]
    lines += ["", "# Where this trial's files go (config.yaml, run.json, losses, samples, checkpoints)",
              "out_dir = 'results/scratch/trial'"]
    return "\n".join(lines)


CELLS = [
    new_markdown_cell(
        "# 02 Training: one CycleGAN trial\n\n"
        "One trial = one params YAML. Run it headless with\n\n"
        "```\npapermill -k maskcycle notebooks/02_training.ipynb OUT.ipynb -f params/demo/baseline.yaml "
        "-p out_dir results/scratch/baseline\n```\n\n"
        "or many at once with `maskcycle sweep params/demo/*.yaml --out results/demo/sweep`. "
        "Domain A = unmasked faces, B = masked faces; G_AB puts a mask on, G_BA takes it off. "
        "Rerunning into the same `out_dir` resumes from its checkpoint."),
    new_code_cell(parameters_source(), metadata={"tags": ["parameters"]}),
    new_markdown_cell("## Configuration\nThe parameters become a validated `TrialConfig` (unknown or ill-typed "
                      "values stop here); the resolved config goes to `config.yaml`."),
    new_code_cell(
        "%matplotlib inline\n"
        "from pathlib import Path\n\n"
        "import yaml\n\n"
        "from maskcycle import plots\n"
        "from maskcycle.config import TrialConfig, field_names\n"
        "from maskcycle.distributed import train_or_launch\n\n"
        "cfg = TrialConfig.from_dict({k: globals()[k] for k in field_names()}, source='notebook parameters')\n"
        "out = Path(out_dir)\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "cfg.to_yaml(out / 'config.yaml')\n"
        "print(f'trial folder: {out.resolve()}')\n"
        "print(yaml.safe_dump(cfg.to_dict(), sort_keys=False))"),
    new_markdown_cell("## Train\n`train` writes `run.json` (git commit and dirty flag, package versions, "
                      "device, start/end, status), `losses.csv`, per-epoch sample grids and checkpoints; "
                      "it resumes when the folder already holds `checkpoints/latest.pt`. With `nproc` > 1 it runs "
                      "DDP through `torchrun` in a child process."),
    new_code_cell("# nproc > 1 (DDP): torchrun in a child process, never multiprocessing inside this kernel\n"
                  "train_or_launch(cfg, out, progress=False)\n"
                  "print((out / 'run.json').read_text())"),
    new_markdown_cell("## Losses\nMean of each of the eight losses per epoch (D_A/D_B: discriminators; "
                      "G_AB/G_BA: adversarial; cycle_A/cycle_B: cycle consistency; idt_AB/idt_BA: identity)."),
    new_code_cell("fig = plots.loss_curves(out, save=out / 'figures' / 'loss_curves.png')"),
    new_markdown_cell("## Fakes by epoch\nThe same test images through training: fake B should gain a "
                      "mask, fake A should lose it."),
    new_code_cell("fig = plots.fakes_by_epoch(out, save=out / 'figures' / 'fakes_by_epoch.png')"),
    new_markdown_cell("## Final samples\nRows: real A, fake B (mask on), reconstructed A, real B, fake A "
                      "(mask off), reconstructed B."),
    new_code_cell("fig = plots.final_samples(out, save=out / 'figures' / 'final_samples.png')"),
    new_markdown_cell("## Speed"),
    new_code_cell("plots.throughput(out)"),
]


def build() -> nbformat.NotebookNode:
    return study_notebook(CELLS)


if __name__ == "__main__":
    nbformat.write(build(), str(HERE / "02_training.ipynb"))
    print(HERE / "02_training.ipynb")
