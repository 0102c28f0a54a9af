"""Build the real-vs-fake quiz: pick images with a seed, write a self-contained page and its key.

The page (`survey.html`) embeds every image as a PNG data URI under an opaque random id and holds
no answer: which id is real or generated, its source file and direction are written only to the
analyst's key (`key.csv`) beside it. Every image is re-encoded at one size, so neither pixel size
nor file metadata nor the byte count gives the answer away (PNGs are stored uncompressed).
Practice images (unscored, with feedback) are the one
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
import os
import re
import sys
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from maskcycle.data.images import centre_square, list_images, read_rgb, split_readable
from maskcycle.io import atomic_write_texts, check_output, read_pairs
from maskcycle.settings import at_least

KEY_COLUMNS = ["image_id", "role", "truth", "domain", "direction", "trial", "source", "source_file", "identity",
               "expected_response", "sha256"]
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
    source: str = ""  # which producer of fakes (a trial or an external folder); "real" for reals
    identity: str = ""  # who the image shows, where known: a real and its own fake share it
    sha256: str = ""  # of the PNG shown in the page: ties answers to the exact pixels


def _quota(n: int, parts: int) -> list[int]:
    """Split n into `parts` near-equal whole numbers, larger ones first."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def _key(path) -> str:
    """How identity maps name a file: its absolute path (folders may be given relative or not)."""
    return os.path.abspath(path)


def _pick(rng: np.random.Generator, files: list[tuple[Path, str]], k: int, what: str, avoid: set[str],
          identity: dict[str, str]) -> list[tuple[Path, str]]:
    pool = [f for f in files if identity.get(_key(f[0])) not in avoid]
    if len(pool) < k:
        raise ValueError(f"{what}: need {k} images, found {len(pool)} usable of {len(files)} "
                         f"(images of a person whose real or fake is already in the quiz are left out); "
                         f"use a smaller --n")
    idx = rng.choice(len(pool), size=k, replace=False)
    return [pool[i] for i in sorted(idx)]


def _sources(folders, label: str) -> list[tuple[str, Path]]:
    """(source name, folder) of one or several folders of fakes; names are the folders as given."""
    folders = [folders] if isinstance(folders, (str, Path)) else list(folders)

    def name(f: Path) -> str:  # our trial's eval/fakes_XX folder is named by the trial
        ours = f.parent.name == "eval" and f.parent.parent.name == label
        return label if label and (ours or len(folders) == 1) else str(f)

    return [(name(Path(f)), Path(f)) for f in folders]


def _readable(folder, skipped: list[str]) -> list[Path]:
    """The images in `folder` that decode; a "path: why" line per other one is added to `skipped`."""
    ok, bad = split_readable(list_images(folder))
    skipped += bad
    return ok


def _pool(sources: list[tuple[str, Path]], k: int, rng, what: str, avoid: set, identity: dict,
          skipped: list[str], known_only: bool = False) -> list:
    """k fakes spread evenly over the sources (each source's share drawn from its own folder);
    `known_only`: fakes whose identity is unknown are left out (see unknown_fakes)."""
    out = []
    for (name, folder), share in zip(sources, _quota(k, len(sources))):
        files = [(p, name) for p in _readable(folder, skipped) if not known_only or _key(p) in identity]
        known = " (fakes of known identity only: see --pairs)" if known_only else ""
        out += _pick(rng, files, share, f"{what} {name}{known}", avoid, identity)
    return out


def select_stimuli(real_a: str | Path, real_b: str | Path, fakes_ab, fakes_ba,
                   n: int = 22, n_practice: int = 2, n_attention: int = 2, seed: int = 0,
                   trial: str = "", identity: dict[str, str] | None = None,
                   skipped: list[str] | None = None, known_only: bool = False) -> list[Stimulus]:
    """Choose a balanced quiz: n/2 real (test A and test B) and n/2 generated (G_AB and G_BA outputs,
    from one folder each or several: `fakes_ab`/`fakes_ba` may be lists, spread evenly), plus
    practice images from the same pools. `identity` maps a file (str path) to the person it shows;
    a real image never appears with a fake of the same identity, so one cannot be judged against
    the other. `known_only`: fakes without an identity are left out (their real could appear beside
    them); else they are kept (see build_survey's allow_unpaired).
    Files that do not decode are left out, one "path: why" line each added to `skipped`."""
    if n < 4 or n % 2:
        raise ValueError(f"n must be an even number >= 4 (half real, half generated), got {n}")
    if n_practice < 0 or n_attention < 0:
        raise ValueError("n_practice and n_attention must be >= 0")
    identity = identity or {}
    skipped = [] if skipped is None else skipped
    rng = np.random.default_rng(seed)
    want = dict(zip(["fakeB", "fakeA"], _quota(n // 2, 2))) | dict(zip(["realA", "realB"], _quota(n // 2, 2)))
    practice = dict(zip(["realA", "fakeB", "realB", "fakeA"], _quota(n_practice, 4)))
    chosen: dict[str, list] = {}
    # Generated first; then reals of people none of whose fakes is in the quiz.
    for name, folders in (("fakeB", fakes_ab), ("fakeA", fakes_ba)):
        chosen[name] = _pool(_sources(folders, trial), want[name] + practice[name], rng, f"{name} pool", set(),
                             identity, skipped, known_only)
    avoid = {identity.get(_key(p)) for name in ("fakeB", "fakeA") for p, _ in chosen[name]} - {None}
    for name, folder in (("realA", real_a), ("realB", real_b)):
        files = [(p, "real") for p in _readable(folder, skipped)]
        chosen[name] = _pick(rng, files, want[name] + practice[name], f"{name} pool", avoid, identity)
    ids = _opaque_ids(rng, n + n_practice + n_attention)
    out: list[Stimulus] = []
    meta = {"realA": ("real", "A", ""), "realB": ("real", "B", ""),
            "fakeB": ("fake", "B", "AB"), "fakeA": ("fake", "A", "BA")}
    for name, files in chosen.items():
        truth, domain, direction = meta[name]
        for j, (path, source) in enumerate(files):
            role = "practice" if j < practice[name] else "main"
            out.append(Stimulus(ids.pop(), role, truth, domain, direction,
                                trial if truth == "fake" and source == trial else "",
                                str(path), source=source, identity=identity.get(_key(path), "")))
    for k in range(n_attention):
        expected = "real" if k % 2 == 0 else "fake"
        out.append(Stimulus(ids.pop(), "attention", "attention", "", "", "", "", expected))
    # Sorted by the random id, so the key's row order tells nothing either.
    return sorted(out, key=lambda s: (s.role, s.image_id))


def unknown_fakes(fakes_ab, fakes_ba, identity: dict[str, str]) -> list[str]:
    """The fake files of the folders that `identity` does not know (e.g. left out of a pairs CSV)."""
    folders = [f for group in (fakes_ab, fakes_ba) for f in ([group] if isinstance(group, (str, Path)) else group)]
    return [str(p) for f in folders for p in list_images(f) if _key(p) not in identity]


def sweep_identities(curated: str | Path, fake_dirs: dict[str, list]) -> dict[str, str]:
    """Identities for our own trials: a fake in eval/fakes_AB is G_AB of the test A image of the same
    name (the evaluation writes it so), and each test image's identity is the curated manifest's
    (else the file itself). `fake_dirs` = {"AB": [dirs], "BA": [dirs]}."""
    import pandas as pd

    curated = Path(curated)
    ident = {}
    manifest = curated / "manifest.csv"
    known = {}
    if manifest.is_file():
        m = pd.read_csv(manifest, dtype=str, keep_default_na=False)
        if "identity" in m:
            known = dict(zip(m.out_file, m.identity))
    for sub in ("testA", "testB"):
        for p in list_images(curated / sub):
            ident[_key(p)] = known.get(f"{sub}/{p.name}") or f"{sub}/{p.name}"
    for direction, sub in (("AB", "testA"), ("BA", "testB")):
        for folder in fake_dirs.get(direction, []):
            for p in list_images(folder):
                source = _key(curated / sub / p.name)
                if source in ident:
                    ident[_key(p)] = ident[source]
    return ident


def csv_identities(path: str | Path) -> dict[str, str]:
    """Identities from a pairs CSV (columns fake,real: a fake and the real photo it was made from,
    paths absolute or relative to the CSV's folder): the fake shares the real's identity.
    Checked by io.read_pairs (a fake listed twice, or that is its own real, is refused)."""
    path = Path(path)

    def resolve(column: str, value: str, row) -> Path:
        p = Path(value) if Path(value).is_absolute() else path.parent / value
        if not p.is_file():
            raise ValueError(f"{path} line {row.line}: {column} file {value!r} not found")
        return Path(_key(p))  # as the folders' files are keyed

    ident = {}
    for _, fake, real in read_pairs(path, ("fake", "real"), resolve):
        ident[_key(fake)] = ident[_key(real)] = f"pair:{_key(real)}"
    return ident


def _opaque_ids(rng: np.random.Generator, k: int) -> list[str]:
    ids: set[str] = set()
    while len(ids) < k:
        ids.add("i" + "".join(f"{b:02x}" for b in rng.integers(0, 256, size=5)))
    ordered = sorted(ids)  # a set's order depends on the process' hash seed; sort before shuffling
    return [ordered[i] for i in rng.permutation(len(ordered))]


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # Stored, not deflated: the byte count is then fixed by the pixel size alone. Compressed PNGs
    # told the demo quiz's fakes from its reals by size with AUC 1.0 (BENCHMARKS.md, survey).
    Image.fromarray(img).save(buf, format="PNG", compress_level=0)  # Pillow writes no text chunks here
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


def _stimulus_pixels(s: Stimulus, size: int, cropped: list[str] | None = None) -> np.ndarray:
    """The image at size x size; a non-square one is centre-cropped to a square first (squashing it
    would tell fakes from reals by shape), and named in `cropped`."""
    if s.role == "attention":  # drawn large enough to read, then brought to the quiz's size like every image
        return attention_image(s.expected_response, size)
    rgb = read_rgb(s.source_file)
    if rgb.shape[0] != rgb.shape[1]:
        if cropped is not None:
            cropped.append(f"{s.source_file} ({rgb.shape[1]}x{rgb.shape[0]})")
        rgb = centre_square(rgb)
    if rgb.shape[:2] != (size, size):
        rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.BICUBIC), dtype=np.uint8)
    return rgb


def key_text(stimuli: list[Stimulus]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=KEY_COLUMNS, lineterminator="\n")
    w.writeheader()
    for s in stimuli:
        w.writerow(dataclasses.asdict(s))
    return buf.getvalue()


def encode_stimuli(stimuli: list[Stimulus], size: int,
                   cropped: list[str] | None = None) -> tuple[list[Stimulus], dict[str, bytes]]:
    """Every image as PNG bytes at size x size, and the stimuli with their PNG's sha256 filled in;
    non-square sources are centre-cropped and named in `cropped`."""
    pngs = {s.image_id: _png(_stimulus_pixels(s, size, cropped)) for s in stimuli}
    return [dataclasses.replace(s, sha256=hashlib.sha256(pngs[s.image_id]).hexdigest()) for s in stimuli], pngs


def survey_id_of(key_rows) -> str:
    """The survey's id: a hash of its key's rows (ids, roles, truths and image hashes, in key order;
    not paths, so a moved copy keeps its id). Every response file carries it; two quizzes of other
    images (e.g. the same seed on another trial) get different ids even where their image ids agree."""
    content = "\n".join(f"{r['image_id']},{r['role']},{r['truth']},{r['expected_response']},{r['sha256']}"
                        for r in key_rows)
    return "s" + hashlib.sha256(content.encode()).hexdigest()[:8]


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
    return page_html(data, title)


def page_html(data: dict, title: str) -> str:
    """The page template filled with the quiz's data (as built, or as the server serves it)."""
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    template = resources.files("maskcycle.survey").joinpath("page.html").read_text(encoding="utf-8")
    return template.replace("__TITLE__", title).replace("__SURVEY_DATA__", blob)


def read_page(path: str | Path) -> tuple[dict, str]:
    """(the quiz data, the title) of a built page; ValueError naming the file when it is not one."""
    text = Path(path).read_text(encoding="utf-8")
    m = re.search(r'<script id="survey-data" type="application/json">(.*?)</script>', text, re.S)
    t = re.search(r"<title>(.*?)</title>", text, re.S)
    try:
        data = json.loads(m.group(1)) if m else None
    except json.JSONDecodeError:
        data = None
    if not (t and isinstance(data, dict) and {"survey_id", "main", "practice", "attention"} <= set(data)):
        raise ValueError(f"{path}: not a quiz page written by maskcycle survey build")
    return data, t.group(1)


def build_survey(real_a: str | Path, real_b: str | Path, fakes_ab, fakes_ba,
                 out_dir: str | Path, n: int = 22, n_practice: int = 2, n_attention: int = 2, seed: int = 0,
                 size: int | None = None, trial: str = "", title: str = "Real or fake?", force: bool = False,
                 identity: dict[str, str] | None = None, allow_unpaired: bool = False) -> Path:
    """Write `survey.html` (for participants), `key.csv` and `survey.json` (for the analyst) into
    out_dir; returns the page's path. Explicit folders, so any producer of fakes works; `fakes_ab`
    and `fakes_ba` may each be a list of folders (sources, recorded in the key).

    `identity` (file -> person: `sweep_identities`, `csv_identities`) keeps a real and its own fake
    out of one quiz; without it that rule cannot be enforced, which must be asked for with
    `allow_unpaired` (file names are not identities).

    `size`: every image is shown at size x size; default the generated images' size (reals are
    resized to it, bicubic, as for FID). An existing key that differs is not overwritten unless
    `force`: answers already collected against it would be joined to the wrong images."""
    out_dir = Path(out_dir)
    if identity is None and not allow_unpaired:
        raise ValueError("the real and fake folders carry no pairing, so a real image and its own fake could both "
                         "appear: give --pairs CSV (columns fake,real) or --allow-unpaired")
    # With identities known, a fake of unknown identity could sit beside its own real: left out (recorded).
    unknown = unknown_fakes(fakes_ab, fakes_ba, identity) if identity is not None and not allow_unpaired else []
    skipped: list[str] = []
    stimuli = select_stimuli(real_a, real_b, fakes_ab, fakes_ba, n=n, n_practice=n_practice,
                             n_attention=n_attention, seed=seed, trial=trial, identity=identity, skipped=skipped,
                             known_only=bool(unknown))
    if size is None:
        fake = next(s for s in stimuli if s.truth == "fake")
        size = min(read_rgb(fake.source_file).shape[:2])
    cropped: list[str] = []
    stimuli, pngs = encode_stimuli(stimuli, size, cropped)
    key = key_text(stimuli)
    old = out_dir / KEY_NAME
    if old.is_file() and old.read_text(encoding="utf-8") != key and not force:
        raise ValueError(f"{old}: a different survey already lives here (answers collected with it would be "
                         f"misread); choose another output folder, or force to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    survey_id = survey_id_of(dataclasses.asdict(s) for s in stimuli)
    html = render_page(stimuli, pngs, survey_id, title=title)
    info = {"survey_id": survey_id, "seed": seed, "n_main": n, "n_practice": n_practice,
            "n_attention": n_attention, "image_size": size, "trial": trial,
            "identities": "none (allowed unpaired)" if identity is None else "known",
            "fakes_left_out_no_identity": len(unknown),
            "file_size_auc": file_size_auc(stimuli, pngs), "unreadable_left_out": skipped,
            "centre_cropped": cropped,
            "sources": {"real_A": str(real_a), "real_B": str(real_b),
                        "fakes_AB": [name for name, _ in _sources(fakes_ab, trial)],
                        "fakes_BA": [name for name, _ in _sources(fakes_ba, trial)]}}
    # all or none: a key without its page (or a page of another key) would misread the answers
    atomic_write_texts({old: key, out_dir / INFO_NAME: json.dumps(info, indent=2) + "\n", out_dir / PAGE_NAME: html})
    return out_dir / PAGE_NAME


def file_size_auc(stimuli: list[Stimulus], pngs: dict[str, bytes]) -> float | None:
    """How well the PNG's byte count alone tells fake from real among the scored images: the AUC
    (0.5: not at all; 1 or 0: perfectly), ties counted half."""
    sizes = {t: [len(pngs[s.image_id]) for s in stimuli if s.role == "main" and s.truth == t] for t in ("fake", "real")}
    if not sizes["fake"] or not sizes["real"]:
        return None
    f, r = np.array(sizes["fake"])[:, None], np.array(sizes["real"])[None, :]
    return round(float(((f > r) + 0.5 * (f == r)).mean()), 4)


def choose_trial(sweep_dir: str | Path) -> str:
    """The sweep's trial to quiz on: the lowest FID_AB + FID_BA in summary.csv when
    it has those columns, else the first trial (by name) whose eval/ holds both fakes folders. The
    non-learned baselines are never chosen (do_nothing's "fakes" are real images)."""
    from maskcycle.config import non_learned
    from maskcycle.results import trial_settings

    sweep_dir = Path(sweep_dir)
    have = sorted(p.name for p in sweep_dir.iterdir()
                  if (p / "eval" / "fakes_AB").is_dir() and (p / "eval" / "fakes_BA").is_dir()
                  and trial_settings(p).get("model") not in non_learned()) \
        if sweep_dir.is_dir() else []
    if not have:
        raise FileNotFoundError(f"{sweep_dir}: no trial folder with eval/fakes_AB and eval/fakes_BA")
    for summary in (sweep_dir / "summary.csv",):
        if not summary.is_file():
            continue
        import pandas as pd

        df = pd.read_csv(summary)
        name_col = next((c for c in ("run", "trial", "name") if c in df.columns), None)  # run: the folder
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
    p.add_argument("--fakes-ab", action="append", default=[], metavar="DIR",
                   help="G_AB outputs (masks put on); repeat for several sources (with --sweep: added to the trial's)")
    p.add_argument("--fakes-ba", action="append", default=[], metavar="DIR", help="G_BA outputs (masks taken off)")
    p.add_argument("--pairs", help="CSV fake,real: which real photo each external fake was made from (keeps a real "
                   "and its own fake out of one quiz)")
    p.add_argument("--allow-unpaired", action="store_true",
                   help="external fakes without --pairs: accept that a real and its own fake may both appear")
    p.add_argument("--n", type=int, default=22, help="scored images, half real and half generated")
    p.add_argument("--practice", type=int, default=2, help="practice images with feedback (unscored)")
    p.add_argument("--attention", type=int, default=2, help="attention checks")
    p.add_argument("--size", type=at_least(1), default=None,
                   help="every image is shown at this size (default: the fakes')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace a different survey already in --out")


def _folders_and_identity(args) -> tuple[list, dict | None, str]:
    """(real A, real B, fakes AB list, fakes BA list), the identity map and the trial name."""
    trial = args.trial or ""
    real_a, real_b, ab, ba = args.real_a, args.real_b, list(args.fakes_ab), list(args.fakes_ba)
    identity = None
    if args.sweep:
        trial = trial or choose_trial(args.sweep)
        ev = f"{args.sweep}/{trial}/eval"
        cur = args.curated or "results/demo/curated"
        real_a, real_b = real_a or f"{cur}/testA", real_b or f"{cur}/testB"
        identity = sweep_identities(cur, {"AB": [f"{ev}/fakes_AB"], "BA": [f"{ev}/fakes_BA"]})
        ab, ba = [f"{ev}/fakes_AB", *ab], [f"{ev}/fakes_BA", *ba]
    external = bool(args.fakes_ab or args.fakes_ba)
    if not (real_a and real_b and ab and ba):
        raise ValueError("give --sweep (and --curated) or all of --real-a --real-b --fakes-ab --fakes-ba")
    if args.pairs:
        identity = {**(identity or {}), **csv_identities(args.pairs)}
    elif external and not args.allow_unpaired:
        raise ValueError("the external fake folders carry no pairing with the reals, so a real image and its own "
                         "fake could both appear: give --pairs CSV (columns fake,real) or --allow-unpaired")
    if identity is None and not args.allow_unpaired:
        raise ValueError("no identities known: give --pairs CSV or --allow-unpaired")
    return [real_a, real_b, ab if len(ab) > 1 else ab[0], ba if len(ba) > 1 else ba[0]], identity, trial


def run_command(args) -> int:
    try:
        folders, identity, trial = _folders_and_identity(args)
        real_a, real_b, ab, ba = folders
        check_output(args.out, [("--real-a", real_a), ("--real-b", real_b), ("--fakes-ab", ab),
                                ("--fakes-ba", ba), ("--pairs", args.pairs), ("--curated", args.curated)],
                     own=(KEY_NAME,))
        page = build_survey(*folders, args.out, n=args.n, n_practice=args.practice, n_attention=args.attention,
                            seed=args.seed, size=args.size, trial=trial, force=args.force, identity=identity,
                            allow_unpaired=args.allow_unpaired)
    except ValueError as exc:
        print(f"maskcycle survey build: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {page} (for participants) and {page.parent / KEY_NAME} (for the analyst only)")
    info = json.loads((page.parent / INFO_NAME).read_text())
    for line in info["unreadable_left_out"]:
        print(f"left out: {line}", file=sys.stderr)
    for line in info["centre_cropped"]:
        print(f"not square, centre-cropped to a square: {line}", file=sys.stderr)
    if info["fakes_left_out_no_identity"]:
        print(f"note: {info['fakes_left_out_no_identity']} fake(s) of unknown identity (not in --pairs) were left "
              "out: the real photo each was made from could have appeared beside it", file=sys.stderr)
    print(f"file size alone separates real from fake with AUC {info['file_size_auc']} (0.5: not at all)")
    return 0
