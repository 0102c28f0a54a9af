"""Write notebooks/01_data_curation.ipynb (no outputs):

    python notebooks/make_01_data_curation.py
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

from maskcycle.nbbuild import study_notebook

HERE = Path(__file__).resolve().parent

PARAMETERS = """\
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
sharpness_min = 8.0      # variance of the Laplacian at 256 px
require_face = False     # also reject images where the detector finds no face
placements = ['correct']  # MaskedFace-Net classes kept; add 'nose_uncovered', 'chin_uncovered', ...
exclusions = 'params/curation/manual_exclusions.csv'
workers = 0              # processes (0: all cores)
sheet_n = 16             # images per contact sheet
"""

CELLS = [
    new_markdown_cell(
        "# 01 Data curation\n\n"
        "Domain A = unmasked faces (FFHQ), domain B = masked faces (MaskedFace-Net, or the embedded demo set "
        "drawn in the same layout by `maskcycle demo-data`). Every raw image gets a verdict with its reason in "
        "`manifest.csv`: unreadable, too small, not RGB, mask placement, face count (OpenCV Haar cascade), "
        "sharpness (variance of the Laplacian), manual exclusion. The kept images are split identity-disjointly "
        "(MaskedFace-Net image N is FFHQ image N with a mask, so an id used in A never appears in B) and written "
        "resized with a decoded cache that the trainer reads.\n\n"
        "```\npapermill -k maskcycle notebooks/01_data_curation.ipynb OUT.ipynb -p out_dir data/curated "
        "-p ffhq_root /data/ffhq -p maskedfacenet_root /data/MaskedFace-Net\n```\n\n"
        "Rerunning resumes: files already measured (same path, size, mtime) are not decoded again."),
    new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
    new_markdown_cell("## Run the curation\nHeavy work runs in a subprocess (`maskcycle curate`, a process pool "
                      "over all cores), not inside this kernel."),
    new_code_cell(
        "%matplotlib inline\n"
        "import json\nimport subprocess\nimport sys\nfrom pathlib import Path\n\n"
        "import matplotlib.pyplot as plt\nimport seaborn as sns\nfrom IPython.display import Image, display\n\n"
        "from maskcycle.data import curation_report as report\n\n"
        "cmd = [sys.executable, '-m', 'maskcycle', 'curate', '--out', out_dir, '--n-train', str(n_train),\n"
        "       '--n-test', str(n_test), '--load-size', str(load_size), '--seed', str(seed),\n"
        "       '--min-size', str(min_size), '--sharpness-min', str(sharpness_min), '--workers', str(workers),\n"
        "       '--placements', *placements]\n"
        "cmd += ['--curated', curated_root] if curated_root else ['--ffhq', ffhq_root, '--maskedfacenet', "
        "maskedfacenet_root]\n"
        "cmd += ['--exclusions', exclusions] if exclusions else []\n"
        "cmd += ['--require-face'] if require_face else []\n"
        "print(' '.join(cmd))\n"
        "proc = subprocess.run(cmd, capture_output=True, text=True)\n"
        "print(proc.stdout[-3000:])\n"
        "if proc.returncode:\n"
        "    raise RuntimeError(f'curation failed:\\n{proc.stderr[-3000:]}')\n"
        "out = Path(out_dir)\n"
        "m = report.load(out)\n"
        "info = json.loads((out / 'curation.json').read_text())\n"
        "print(json.dumps(info['timing'], indent=1))"),
    new_markdown_cell("## Reasons\nImages per reason and domain (an image with several reasons counts under each; "
                      "`placement:*` are masked images whose class was not asked for)."),
    new_code_cell(
        "rc = report.reason_counts(m)\n"
        "display(rc.pivot(index='reason', columns='domain', values='images').fillna(0).astype(int))\n"
        "fig, ax = plt.subplots(figsize=(8, 4))\n"
        "sns.barplot(data=rc, y='reason', x='images', hue='domain', ax=ax)\n"
        "ax.set_xscale('log'); ax.set_title('images per reason'); plt.tight_layout(); plt.show()"),
    new_markdown_cell("## Mask placement\nMaskedFace-Net's classes, read from the file suffix: `correct` (CMFD), "
                      "and the incorrectly worn IMFD classes, kept only when listed in `placements`."),
    new_code_cell(
        "pc = report.placement_counts(m)\ndisplay(pc)\n"
        "fig, ax = plt.subplots(figsize=(7, 3))\n"
        "sns.barplot(data=pc.melt(id_vars='placement', value_vars=['images', 'kept', 'used']), y='placement', "
        "x='value', hue='variable', ax=ax)\n"
        "ax.set_title('masked images per placement class'); plt.tight_layout(); plt.show()"),
    new_markdown_cell("## Sharpness\nVariance of the Laplacian of a 256-px grayscale copy; images left of the "
                      "dashed threshold are rejected as blurry."),
    new_code_cell(
        "d = m[m.sharpness.notna() & (m.sharpness > 0)]\n"
        "fig, ax = plt.subplots(figsize=(8, 3.5))\n"
        "sns.histplot(data=d, x='sharpness', hue='domain', bins=60, log_scale=True, element='step', ax=ax)\n"
        "ax.axvline(sharpness_min, color='k', ls='--')\n"
        "ax.set_title(f'sharpness (variance of the Laplacian); dashed: threshold {sharpness_min}')\n"
        "plt.tight_layout(); plt.show()"),
    new_markdown_cell("## Face detector\nOpenCV's frontal-face Haar cascade (shipped in opencv-python-headless 4.x). "
                      "Hit rate = share of measured images with at least one face found. Images with two or more "
                      "faces are rejected; images with none are rejected only with `require_face` (Haar cascades, "
                      "trained on bare faces, miss many masked ones)."),
    new_code_cell(
        "display(report.hit_rates(m))\n"
        "truth = Path(ffhq_root).parent / 'demo_truth.csv'\n"
        "if not curated_root and truth.exists():\n"
        "    print('The demo set plants defects; what the filters caught:')\n"
        "    display(report.planted_defects(m, truth))"),
    new_markdown_cell("## Contact sheets\nKept images and rejected ones per first reason, for a quick review by eye. "
                      "Add what should not be used to the manual exclusion list (`id,reason[,domain]`) and rerun."),
    new_code_cell(
        "sheets = report.review_sheets(m, out, n=sheet_n, seed=seed)\n"
        "for name, path in sheets.items():\n"
        "    print(name, path)\n"
        "    display(Image(filename=str(path)))"),
    new_markdown_cell("## Split\nPer domain: train / test (written), unused (kept but not needed, or identity "
                      "used in the other domain) and rejected. `pairs_test.csv` lists each test image's "
                      "counterpart in the other raw set."),
    new_code_cell(
        "display(report.split_table(m))\n"
        "print(json.dumps(info['counts']), '| pairs:', sum(1 for _ in open(out / 'pairs_test.csv')) - 1)\n"
        "print('cache:', info['cache'])"),
]


def build() -> nbformat.NotebookNode:
    return study_notebook(CELLS)


if __name__ == "__main__":
    nbformat.write(build(), HERE / "01_data_curation.ipynb")
    print(HERE / "01_data_curation.ipynb")
