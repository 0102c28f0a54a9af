"""The quiz page: what it contains (no answer key) and how it behaves in a real headless Chromium."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from maskcycle.data.images import write_png
from maskcycle.survey import analysis
from maskcycle.survey import page as page_mod
from maskcycle.survey import simulate as survey_sim

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def make_folders(root: Path, n: int = 10, sizes=None) -> dict[str, Path]:
    """Four tiny image folders; reals and fakes get different pixel sizes on purpose."""
    rng = np.random.default_rng(0)
    sizes = sizes or {"testA": 24, "testB": 24, "fakes_AB": 16, "fakes_BA": 16}
    out = {}
    for name, size in sizes.items():
        for i in range(n):
            write_png(root / name / f"face{i:03d}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        out[name] = root / name
    return out


def build(tmp_path: Path, n_images: int = 10, **kw) -> Path:
    f = make_folders(tmp_path / "src", n=n_images)
    # as our evaluation writes them: fakes_AB/X is G_AB(testA/X), so they show one person
    ident = page_mod.sweep_identities(tmp_path / "src", {"AB": [f["fakes_AB"]], "BA": [f["fakes_BA"]]})
    kw = {"n": 8, "n_practice": 2, "n_attention": 2, "seed": 3, "size": 32, "trial": "trialX", "identity": ident} | kw
    return page_mod.build_survey(f["testA"], f["testB"], f["fakes_AB"], f["fakes_BA"], tmp_path / "quiz", **kw)


def page_data(html: str) -> dict:
    m = re.search(r'<script id="survey-data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def test_selection_is_balanced_seeded_and_counterpart_free(tmp_path):
    page = build(tmp_path)
    key = analysis.read_key(page.parent)
    main = key[key["role"] == "main"]
    assert len(main) == 8 and (main["truth"] == "real").sum() == 4
    assert sorted(main["direction"][main["truth"] == "fake"]) == ["AB", "AB", "BA", "BA"]
    assert sorted(main["domain"][main["truth"] == "real"]) == ["A", "A", "B", "B"]
    assert (key["role"] == "practice").sum() == 2 and (key["role"] == "attention").sum() == 2
    # a real image never appears with the fake made from it, by identity
    stems = lambda d: {Path(p).stem for p in key["source_file"] if f"/{d}/" in p}  # noqa: E731
    assert not stems("testA") & stems("fakes_AB") and not stems("testB") & stems("fakes_BA")
    scored = key[key["truth"] != "attention"]
    assert (scored["identity"] != "").all()
    assert not set(scored.identity[scored.truth == "real"]) & set(scored.identity[scored.truth == "fake"])
    again = analysis.read_key(build(tmp_path / "again").parent)
    assert list(again["image_id"]) == list(key["image_id"])  # same seed, same quiz
    other = analysis.read_key(build(tmp_path / "other", seed=4).parent)
    assert list(other["image_id"]) != list(key["image_id"])


def test_page_holds_no_answer_key(tmp_path):
    page = build(tmp_path)
    html = page.read_text()
    key = analysis.read_key(page.parent)
    for path in key["source_file"][key["source_file"] != ""]:
        assert Path(path).name not in html and Path(path).stem not in html
    for word in ("testA", "testB", "fakes_AB", "fakes_BA", "trialX", "truth", "direction", "source"):
        assert word not in html, word
    data = page_data(html)
    assert {i["id"] for i in data["main"]} == set(key["image_id"][key["role"] == "main"])
    for item in data["main"] + data["attention"]:
        assert set(item) == {"id", "src"}  # pixels and an opaque id, nothing else
    assert {i["id"] for i in data["practice"]} == set(key["image_id"][key["role"] == "practice"])
    # every image re-encoded at one size: pixel size says nothing about the source
    sizes = set()
    for item in data["main"] + data["practice"]:
        raw = base64.b64decode(item["src"].split(",", 1)[1])
        with Image.open(io.BytesIO(raw)) as im:
            sizes.add(im.size)
            assert not im.info.get("dpi") and not getattr(im, "text", {})
    assert sizes == {(32, 32)}


def test_quiz_is_the_same_in_another_process_and_guards_its_key(tmp_path):
    page = build(tmp_path)
    key = (page.parent / "key.csv").read_text()
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path; "
            "from test_survey_page import build; print(build(Path(sys.argv[1])))")
    other = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p2"), str(Path(__file__).parent)],
                           env=os.environ | {"PYTHONHASHSEED": "123"}, check=True, capture_output=True, text=True)
    key2 = (Path(other.stdout.strip()).parent / "key.csv").read_text()
    assert key2.replace(str(tmp_path / "p2"), str(tmp_path)) == key  # same ids, files and image hashes
    assert page.read_text() == Path(other.stdout.strip()).read_text()
    # a different quiz in the same folder would orphan answers collected with the first
    f = {d: tmp_path / "src" / d for d in ("testA", "testB", "fakes_AB", "fakes_BA")}
    with pytest.raises(ValueError, match="a different survey already lives here"):
        page_mod.build_survey(f["testA"], f["testB"], f["fakes_AB"], f["fakes_BA"], page.parent, n=8, seed=99,
                              allow_unpaired=True)
    assert (page.parent / "key.csv").read_text() == key
    page_mod.build_survey(f["testA"], f["testB"], f["fakes_AB"], f["fakes_BA"], page.parent, n=8, seed=99, force=True,
                          allow_unpaired=True)
    assert (page.parent / "key.csv").read_text() != key
    # default display size: the generated images' own size (16 px here), reals resized to it
    data = page_data(page.read_text())
    with Image.open(io.BytesIO(base64.b64decode(data["main"][0]["src"].split(",", 1)[1]))) as im:
        assert im.size == (16, 16)


def test_build_rejects_too_few_images(tmp_path):
    f = make_folders(tmp_path / "src", n=3)
    with pytest.raises(ValueError, match="need .* images"):
        page_mod.build_survey(f["testA"], f["testB"], f["fakes_AB"], f["fakes_BA"], tmp_path / "q", n=22,
                              allow_unpaired=True)
    with pytest.raises(ValueError, match="even"):
        page_mod.build_survey(f["testA"], f["testB"], f["fakes_AB"], f["fakes_BA"], tmp_path / "q", n=5,
                              allow_unpaired=True)


def find_chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.browser
@pytest.mark.slow
def test_page_in_headless_chromium(tmp_path):
    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium installed (run_tests.sh installs Debian's chromium when run as root "
                    "with apt-get; MASKCYCLE_NO_BROWSER_INSTALL=1 turns that off)")
    from playwright import sync_api  # pinned in requirements.lock: missing means a broken venv, not a skip
    page_path = build(tmp_path)
    data = page_data(page_path.read_text())
    n_total = len(data["main"]) + len(data["attention"]) + len(data["practice"])
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=args, headless=True)
        try:
            ctx = browser.new_context(accept_downloads=True)
            page = ctx.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.resolve().as_uri() + "?pid=tester_01")
            assert page.input_value("#participant-id") == "tester_01"
            page.click("#start")
            with page.expect_download(timeout=60_000) as dl:
                for t in range(n_total):
                    page.wait_for_selector("#btn-real:not([disabled])", timeout=20_000)
                    progress = page.text_content("#progress")
                    if t < len(data["practice"]):
                        page.click("#btn-fake")  # buttons in practice; feedback follows
                        page.wait_for_function("document.getElementById('feedback').textContent !== ''")
                    elif t % 2:
                        page.keyboard.press("r")
                    else:
                        page.keyboard.press("F")
                    if t < n_total - 1:  # the next image is shown only after the answer
                        page.wait_for_function(f"document.getElementById('progress').textContent !== {progress!r}")
            download = dl.value
            assert re.fullmatch(r"s[0-9a-f]{8}_tester_01_\d{14}\.csv", download.suggested_filename)
            saved = tmp_path / "responses" / download.suggested_filename
            download.save_as(saved)
            assert page.is_visible("#done")
            assert not errors, errors
        finally:
            browser.close()
    with open(saved, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == survey_sim.RESPONSE_COLUMNS
    assert len(rows) == n_total
    assert [int(r["trial_index"]) for r in rows] == list(range(n_total))
    assert {r["participant_id"] for r in rows} == {"tester_01"}
    assert len({r["session_start"] for r in rows}) == 1
    assert [r["is_practice"] for r in rows[:2]] == ["1", "1"] and {r["response"] for r in rows[:2]} == {"fake"}
    ids = [r["image_id"] for r in rows]
    assert set(ids) == {i["id"] for i in data["main"] + data["attention"] + data["practice"]}
    assert sum(r["is_attention_check"] == "1" for r in rows) == len(data["attention"])
    assert all(float(r["rt_ms"]) >= 0 for r in rows)
    # the key, read by the analysis, accepts it as one complete session
    resp = analysis.read_responses(saved.parent, page_path.parent)
    assert resp.sessions["complete"].tolist() == [True]
    assert len(resp.answers) == len(data["main"])
    # keys answered: odd scored positions "real", even "fake"
    scored = rows[2:]
    assert all(r["response"] == ("real" if (i + 2) % 2 else "fake") for i, r in enumerate(scored))
    assert os.path.getsize(saved) > 0


def test_choose_trial_prefers_lowest_fid(tmp_path):
    for name in ("a_trial", "b_trial", "c_noeval"):
        (tmp_path / name).mkdir()
    for name in ("a_trial", "b_trial"):
        for d in ("fakes_AB", "fakes_BA"):
            (tmp_path / name / "eval" / d).mkdir(parents=True)
    assert page_mod.choose_trial(tmp_path) == "a_trial"  # no table: first by name
    (tmp_path / "summary.csv").write_text("trial,FID_AB,FID_BA\na_trial,90,80\nb_trial,50,60\nc_noeval,1,1\n")
    assert page_mod.choose_trial(tmp_path) == "b_trial"  # c_noeval has no fakes to show
    with pytest.raises(FileNotFoundError, match="no trial folder"):
        page_mod.choose_trial(tmp_path / "c_noeval")


def _renamed_fakes(tmp_path: Path, f: dict, n: int) -> tuple[Path, Path]:
    """The other team's fakes: G_AB(testA/faceK) saved as fakeAB_K.png, with a pairs CSV fake,real."""
    out = tmp_path / "theirs"
    rows = ["fake,real"]
    for k in range(n):
        out.mkdir(exist_ok=True)
        (out / f"fakeAB_{k}.png").write_bytes((f["fakes_AB"] / f"face{k:03d}.png").read_bytes())
        rows.append(f"theirs/fakeAB_{k}.png,src/testA/face{k:03d}.png")
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    return out, tmp_path / "pairs.csv"


def test_external_fakes_need_pairs_and_identity_keeps_real_and_own_fake_apart(tmp_path):
    n = 6
    f = make_folders(tmp_path / "src", n=n)
    theirs, pairs_csv = _renamed_fakes(tmp_path, f, n)
    with pytest.raises(ValueError, match="--pairs CSV .* or --allow-unpaired"):
        page_mod.build_survey(f["testA"], f["testB"], theirs, f["fakes_BA"], tmp_path / "q", n=8, size=16)
    # our BA fakes' identities as for a sweep; the renamed AB fakes' from the CSV
    ident = page_mod.sweep_identities(tmp_path / "src", {"BA": [f["fakes_BA"]]}) | page_mod.csv_identities(pairs_csv)
    for seed in range(8):  # 3 of 6 reals of A drawn next to 2 of 6 fakes made from them: often clash by chance
        page = page_mod.build_survey(f["testA"], f["testB"], theirs, f["fakes_BA"], tmp_path / f"q{seed}", n=8,
                                     n_practice=0, size=16, seed=seed, identity=ident)
        key = analysis.read_key(page.parent)
        fakes = {ident[page_mod._key(p)] for p in key.source_file[key.direction == "AB"]}
        reals = {ident.get(page_mod._key(p)) for p in key.source_file[(key.truth == "real") & (key.domain == "A")]}
        assert not fakes & reals  # different names, same person: still never both


def test_several_sources_recorded_and_scored_per_source(tmp_path):
    f = make_folders(tmp_path / "src", n=12)
    theirs, pairs_csv = _renamed_fakes(tmp_path, f, 12)
    ident = page_mod.sweep_identities(tmp_path / "src", {"AB": [f["fakes_AB"]], "BA": [f["fakes_BA"]]})
    ident.update(page_mod.csv_identities(pairs_csv))
    page = page_mod.build_survey(f["testA"], f["testB"], [f["fakes_AB"], theirs], f["fakes_BA"], tmp_path / "q",
                                 n=12, n_practice=0, size=16, identity=ident)
    key = analysis.read_key(page.parent)
    ab = key[key.direction == "AB"]
    assert set(ab.source) == {str(f["fakes_AB"]), str(theirs)}
    assert set(key.source[key.truth == "real"]) == {"real"}
    main = key[key.role == "main"]
    answers = pd.concat([main.assign(participant_id=p, error=e) for p, e in (("p1", True), ("p2", False))])
    rates = analysis.rate_table(answers, n_boot=50)
    assert {f"fool rate: source {s}" for s in ab.source} <= set(rates.measure)


def test_every_image_same_size_and_file_size_auc_recorded(tmp_path):
    page = build(tmp_path, size=24)
    data = page_data(page.read_text())
    for item in data["main"] + data["practice"] + data["attention"]:
        with Image.open(io.BytesIO(base64.b64decode(item["src"].split(",", 1)[1]))) as im:
            assert im.size == (24, 24) and im.format == "PNG" and im.mode == "RGB"
    info = json.loads((page.parent / "survey.json").read_text())
    assert info["file_size_auc"] == 0.5  # stored PNGs of one size: the byte count says nothing
    stim = [page_mod.Stimulus(str(k), "main", t, "A", "", "", "") for k, t in enumerate(["real", "real", "fake"])]
    assert page_mod.file_size_auc(stim, {"0": b"xx", "1": b"xxx", "2": b"x"}) == 0.0  # fakes smallest: perfect
    assert "DATA.main.length + DATA.attention.length" in page.read_text()  # intro counts what the progress counts
