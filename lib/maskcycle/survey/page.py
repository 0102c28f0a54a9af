"""Build the real-vs-fake quiz: pick images with a seed, write a self-contained page and its key.

The page (`survey.html`) embeds every image as a PNG data URI under an opaque random id and holds
no answer: which id is real or generated, its source file and direction are written only to the
analyst's key (`key.csv`) beside it. Every image is re-encoded at one size, so neither pixel size
nor file metadata gives the answer away. Practice images (unscored, with feedback) are the one
exception: their answers are in the page, since feedback needs them; they never appear as scored
trials.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import json
import sys
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from maskcycle.config import at_least
from maskcycle.data.images import list_images, read_rgb
from maskcycle.io import atomic_write_text

KEY_COLUMNS = ["image_id", "role", "truth", "domain", "direction", "trial", "source_file", "expected_response",
               "sha256"]
PAGE_NAME = "survey.html"
KEY_NAME = "key.csv"
INFO_NAME = "survey.json"


@dataclasses.dataclass(frozen=True)
class Stimulus:
    """One image of the quiz as the analyst knows it (the page sees only `image_id` and pixels)."""

    image_id: str
    role: str  # main | practice | attention
    truth: str  # real | fake | attention
    domain: str  # A (unmasked) or B (masked): what the image shows
    direction: str  # AB or BA for generated images, "" otherwise
    trial: str
    source_file: str
    expected_response: str = ""  # attention checks: the button the image asks for
    sha256: str = ""  # of the PNG shown in the page: ties answers to the exact pixels


def _quota(n: int, parts: int) -> list[int]:
    """Split n into `parts` near-equal whole numbers, larger ones first."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def _pick(rng: np.random.Generator, files: list[Path], k: int, what: str, exclude_stems: set[str]) -> list[Path]:
    pool = [f for f in files if f.stem not in exclude_stems]
    if len(pool) < k:
        raise ValueError(f"{what}: need {k} images, found {len(pool)} usable of {len(files)} "
                         f"(images whose counterpart is already in the quiz are left out); use a smaller --n")
    idx = rng.choice(len(pool), size=k, replace=False)
    return [pool[i] for i in sorted(idx)]


def select_stimuli(real_a: str | Path, real_b: str | Path, fakes_ab: str | Path, fakes_ba: str | Path,
                   n: int = 22, n_practice: int = 2, n_attention: int = 2, seed: int = 0,
                   trial: str = "") -> list[Stimulus]:
    """Choose a balanced quiz: n/2 real (test A and test B) and n/2 generated (G_AB and G_BA outputs),
    plus practice images from the same four pools. A real image and the image generated from it
    (same file stem) never both appear, so one cannot be judged against the other."""
    if n < 4 or n % 2:
        raise ValueError(f"n must be an even number >= 4 (half real, half generated), got {n}")
    if n_practice < 0 or n_attention < 0:
        raise ValueError("n_practice and n_attention must be >= 0")
    rng = np.random.default_rng(seed)
    pools = {"fakeB": list_images(fakes_ab), "fakeA": list_images(fakes_ba),
             "realA": list_images(real_a), "realB": list_images(real_b)}
    want = dict(zip(["fakeB", "fakeA"], _quota(n // 2, 2))) | dict(zip(["realA", "realB"], _quota(n // 2, 2)))
    practice = dict(zip(["realA", "fakeB", "realB", "fakeA"], _quota(n_practice, 4)))
    chosen: dict[str, list[Path]] = {}
    # Generated first; then reals whose generated counterpart is not in the quiz.
    for name in ["fakeB", "fakeA", "realA", "realB"]:
        avoid = set()
        if name == "realA":
            avoid = {p.stem for p in chosen["fakeB"]}
        elif name == "realB":
            avoid = {p.stem for p in chosen["fakeA"]}
        chosen[name] = _pick(rng, pools[name], want[name] + practice[name], f"{name} pool", avoid)
    ids = _opaque_ids(rng, n + n_practice + n_attention)
    out: list[Stimulus] = []
    meta = {"realA": ("real", "A", ""), "realB": ("real", "B", ""),
            "fakeB": ("fake", "B", "AB"), "fakeA": ("fake", "A", "BA")}
    for name, files in chosen.items():
        truth, domain, direction = meta[name]
        for j, path in enumerate(files):
            role = "practice" if j < practice[name] else "main"
            out.append(Stimulus(ids.pop(), role, truth, domain, direction, trial if truth == "fake" else "",
                                str(path)))
    for k in range(n_attention):
        expected = "real" if k % 2 == 0 else "fake"
        out.append(Stimulus(ids.pop(), "attention", "attention", "", "", "", "", expected))
    # Sorted by the random id, so the key's row order tells nothing either.
    return sorted(out, key=lambda s: (s.role, s.image_id))


def _opaque_ids(rng: np.random.Generator, k: int) -> list[str]:
    ids: set[str] = set()
    while len(ids) < k:
        ids.add("i" + "".join(f"{b:02x}" for b in rng.integers(0, 256, size=5)))
    ordered = sorted(ids)  # a set's order depends on the process' hash seed; sort before shuffling
    return [ordered[i] for i in rng.permutation(len(ordered))]


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=False)  # Pillow writes no text chunks here
    return buf.getvalue()


def attention_image(expected: str, size: int) -> np.ndarray:
    """A grey card asking for one button ("Please press FAKE"); the answer is in pixels only."""
    canvas = max(size, 192)
    img = Image.new("RGB", (canvas, canvas), (200, 200, 200))
    draw = ImageDraw.Draw(img)
    text = f"Attention check:\nplease press\n{expected.upper()}"
    draw.multiline_text((canvas // 2, canvas // 2), text, fill=(20, 20, 20), anchor="mm", align="center",
                        font_size=canvas // 9)
    if canvas != size:
        img = img.resize((size, size), Image.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def _stimulus_pixels(s: Stimulus, size: int) -> np.ndarray:
    if s.role == "attention":  # drawn large enough to read; its size may differ, it is no face anyway
        return attention_image(s.expected_response, max(size, 256))
    return read_rgb(s.source_file, size)


def key_text(stimuli: list[Stimulus]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=KEY_COLUMNS, lineterminator="\n")
    w.writeheader()
    for s in stimuli:
        w.writerow(dataclasses.asdict(s))
    return buf.getvalue()


def encode_stimuli(stimuli: list[Stimulus], size: int) -> tuple[list[Stimulus], dict[str, bytes]]:
    """Every image as PNG bytes at size x size, and the stimuli with their PNG's sha256 filled in."""
    pngs = {s.image_id: _png(_stimulus_pixels(s, size)) for s in stimuli}
    return [dataclasses.replace(s, sha256=hashlib.sha256(pngs[s.image_id]).hexdigest()) for s in stimuli], pngs


def render_page(stimuli: list[Stimulus], pngs: dict[str, bytes], survey_id: str, title: str = "Real or fake?",
                feedback_ms: int = 1200) -> str:
    """The quiz as one HTML string (images inline, no answers but the practice ones)."""
    data = {"survey_id": survey_id, "feedback_ms": feedback_ms, "main": [], "attention": [], "practice": []}
    for s in stimuli:
        uri = "data:image/png;base64," + base64.b64encode(pngs[s.image_id]).decode("ascii")
        item = {"id": s.image_id, "src": uri}
        if s.role == "practice":
            item["answer"] = s.truth
        data[s.role].append(item)
    # Order inside the page is by opaque id; each participant's order is shuffled in the browser.
    for role in data:
        if isinstance(data[role], list):
            data[role].sort(key=lambda d: d["id"])
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    template = resources.files("maskcycle.survey").joinpath("page.html").read_text(encoding="utf-8")
    return template.replace("__TITLE__", title).replace("__SURVEY_DATA__", blob)


def build_survey(real_a: str | Path, real_b: str | Path, fakes_ab: str | Path, fakes_ba: str | Path,
                 out_dir: str | Path, n: int = 22, n_practice: int = 2, n_attention: int = 2, seed: int = 0,
                 size: int | None = None, trial: str = "", title: str = "Real or fake?", force: bool = False) -> Path:
    """Write `survey.html` (for participants), `key.csv` and `survey.json` (for the analyst) into
    out_dir; returns the page's path. Explicit folders, so any producer of fakes works.

    `size`: every image is shown at size x size; default the generated images' size (reals are
    resized to it, bicubic, as for FID). An existing key that differs is not overwritten unless
    `force`: answers already collected against it would be joined to the wrong images."""
    out_dir = Path(out_dir)
    stimuli = select_stimuli(real_a, real_b, fakes_ab, fakes_ba, n=n, n_practice=n_practice,
                             n_attention=n_attention, seed=seed, trial=trial)
    if size is None:
        fake = next(s for s in stimuli if s.truth == "fake")
        size = read_rgb(fake.source_file).shape[0]
    stimuli, pngs = encode_stimuli(stimuli, size)
    key = key_text(stimuli)
    old = out_dir / KEY_NAME
    if old.is_file() and old.read_text(encoding="utf-8") != key and not force:
        raise ValueError(f"{old}: a different survey already lives here (answers collected with it would be "
                         f"misread); choose another output folder, or force to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    # Names the answer files: ids and image hashes, not paths, so a moved copy keeps its id.
    content = "\n".join(f"{s.image_id},{s.role},{s.truth},{s.expected_response},{s.sha256}" for s in stimuli)
    survey_id = "s" + hashlib.sha256(content.encode()).hexdigest()[:8]
    html = render_page(stimuli, pngs, survey_id, title=title)
    atomic_write_text(old, key)
    info = {"survey_id": survey_id, "seed": seed, "n_main": n, "n_practice": n_practice,
            "n_attention": n_attention, "image_size": size, "trial": trial,
            "sources": {"real_A": str(real_a), "real_B": str(real_b), "fakes_AB": str(fakes_ab),
                        "fakes_BA": str(fakes_ba)}}
    atomic_write_text(out_dir / INFO_NAME, json.dumps(info, indent=2) + "\n")
    atomic_write_text(out_dir / PAGE_NAME, html)
    return out_dir / PAGE_NAME


def choose_trial(sweep_dir: str | Path) -> str:
    """The sweep's trial to quiz on: the lowest FID_AB + FID_BA in summary.csv when
    it has those columns, else the first trial (by name) whose eval/ holds both fakes folders."""
    sweep_dir = Path(sweep_dir)
    have = sorted(p.name for p in sweep_dir.iterdir()
                  if (p / "eval" / "fakes_AB").is_dir() and (p / "eval" / "fakes_BA").is_dir()) \
        if sweep_dir.is_dir() else []
    if not have:
        raise FileNotFoundError(f"{sweep_dir}: no trial folder with eval/fakes_AB and eval/fakes_BA")
    for summary in (sweep_dir / "summary.csv",):
        if not summary.is_file():
            continue
        import pandas as pd

        df = pd.read_csv(summary)
        name_col = next((c for c in ("trial", "name") if c in df.columns), None)
        if name_col and {"FID_AB", "FID_BA"} <= set(df.columns):
            df = df[df[name_col].astype(str).isin(have)].copy()
            df["fid"] = pd.to_numeric(df["FID_AB"], errors="coerce") + pd.to_numeric(df["FID_BA"], errors="coerce")
            df = df.dropna(subset=["fid"]).sort_values(["fid", name_col])
            if len(df):
                return str(df[name_col].iloc[0])
    return have[0]


# --- command line ------------------------------------------------------------------------
def add_arguments(p) -> None:
    """`maskcycle survey build`."""
    p.add_argument("--out", required=True, help=f"folder for {PAGE_NAME}, {KEY_NAME}, {INFO_NAME}")
    p.add_argument("--sweep", help="sweep folder: fakes from <sweep>/<trial>/eval/fakes_AB|BA")
    p.add_argument("--trial", help="trial in the sweep (default: lowest FID_AB + FID_BA, else first)")
    p.add_argument("--curated", help="curated folder with testA/testB (with --sweep; default results/demo/curated)")
    p.add_argument("--real-a", help="real unmasked test images")
    p.add_argument("--real-b", help="real masked test images")
    p.add_argument("--fakes-ab", help="G_AB outputs (masks put on)")
    p.add_argument("--fakes-ba", help="G_BA outputs (masks taken off)")
    p.add_argument("--n", type=int, default=22, help="scored images, half real and half generated")
    p.add_argument("--practice", type=int, default=2, help="practice images with feedback (unscored)")
    p.add_argument("--attention", type=int, default=2, help="attention checks")
    p.add_argument("--size", type=at_least(1), default=None,
                   help="every image is shown at this size (default: the fakes')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace a different survey already in --out")


def run_command(args) -> int:
    folders = [args.real_a, args.real_b, args.fakes_ab, args.fakes_ba]
    trial = args.trial or ""
    if args.sweep:
        trial = trial or choose_trial(args.sweep)
        ev = f"{args.sweep}/{trial}/eval"
        cur = args.curated or "results/demo/curated"
        folders = [f or d for f, d in zip(folders, [f"{cur}/testA", f"{cur}/testB", f"{ev}/fakes_AB",
                                                    f"{ev}/fakes_BA"])]
    if not all(folders):
        print("maskcycle survey build: error: give --sweep (and --curated) or all of --real-a --real-b "
              "--fakes-ab --fakes-ba", file=sys.stderr)
        return 2
    page = build_survey(*folders, args.out, n=args.n, n_practice=args.practice, n_attention=args.attention,
                        seed=args.seed, size=args.size, trial=trial, force=args.force)
    print(f"wrote {page} (for participants) and {page.parent / KEY_NAME} (for the analyst only)")
    return 0
