"""Issue 24: every pairs CSV (curate --pairs, evaluate --pairs-ab/-ba, survey build --pairs,
pairs_test.csv) goes through io.read_csv_rows / io.read_pairs: one-line errors naming the file,
line and value, exit 2, nothing computed; a byte-order mark is read as what it is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maskcycle.cli import main
from maskcycle.data.images import write_png
from maskcycle.evaluation import external, held_out
from maskcycle.io import read_csv_rows
from maskcycle.survey import analysis

BOM = "\ufeff"


def _images(folder: Path, names, seed: int = 0, size: int = 16) -> Path:
    rng = np.random.default_rng(seed)
    for name in names:
        write_png(folder / name, rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return folder


def _cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.fixture
def ext(tmp_path):
    """fakes (A->B) and real folders named alike: 0.png .. 3.png."""
    names = [f"{k}.png" for k in range(4)]
    return {"fakes": _images(tmp_path / "fakes", names, 1), "real_a": _images(tmp_path / "realA", names, 2),
            "real_b": _images(tmp_path / "realB", names, 3), "out": tmp_path / "out"}


def _evaluate(capsys, ext, pairs: Path) -> tuple[int, str]:
    return _cli(capsys, "evaluate", "--fakes-ab", ext["fakes"], "--real-b", ext["real_b"], "--pairs-ab", pairs,
                "--out", ext["out"], "--no-download", "--device", "cpu")


def test_csv_reader_strips_a_byte_order_mark_and_names_short_and_empty_rows(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(BOM + "fake,real\r\nx.png , y.png\r\n\r\nz.png,w.png\r\n", encoding="utf-8")
    rows = read_csv_rows(path, {"fake", "real"})
    assert [(r.line, r["fake"], r["real"]) for r in rows] == [(2, "x.png", "y.png"), (4, "z.png", "w.png")]
    path.write_text("fake,real\nx.png,y.png\nz.png\n")
    with pytest.raises(ValueError, match=r"p\.csv line 3: 1 field\(s\), the header has 2 \(fake,real\)"):
        read_csv_rows(path, {"fake", "real"})
    path.write_text("fake,real\nx.png,y.png,extra\n")
    with pytest.raises(ValueError, match=r"line 2: 3 field\(s\), the header has 2"):
        read_csv_rows(path, {"fake", "real"})
    path.write_text("fake,real\nx.png,\n")
    with pytest.raises(ValueError, match=r"p\.csv line 2: empty real"):
        read_csv_rows(path, {"fake", "real"})
    path.write_bytes(b"fake,real\n\xe9.png,y.png\n")
    with pytest.raises(ValueError, match=r"p\.csv: not UTF-8 text"):
        read_csv_rows(path, {"fake", "real"})


def test_evaluate_pairs_short_row_repeated_row_and_bom(ext, capsys):
    pairs = ext["real_a"] / "pairs.csv"
    pairs.write_text("fake,real\n0.png,0.png\n1.png\n")
    code, err = _evaluate(capsys, ext, pairs)
    assert code == 2 and f"{pairs} line 3: 1 field(s), the header has 2" in err and err.count("\n") == 1
    pairs.write_text("fake,real\n0.png,0.png\n1.png,1.png\n0.png,0.png\n")  # 3 rows from 2 images
    code, err = _evaluate(capsys, ext, pairs)
    assert code == 2 and "line 4: fake '0.png' is already listed on line 2" in err
    assert not ext["out"].exists()  # refused before any image was read
    pairs.write_text(BOM + "fake,real\n0.png,0.png\n1.png,1.png\n", encoding="utf-8")  # Excel's "CSV UTF-8"
    assert [(f.parent.name, r.parent.name) for f, r in external.read_pair_csv(pairs, ext["fakes"])] == \
        [("fakes", "realA"), ("fakes", "realA")]  # bare names: the fake from its folder, the real beside the CSV


def test_evaluate_refuses_a_fake_that_is_its_own_real(ext, capsys):
    pairs = ext["fakes"].parent / "pairs.csv"  # paths relative to the CSV: the "fake" is the real itself
    pairs.write_text("fake,real\nrealA/0.png,realA/0.png\n")
    code, err = _evaluate(capsys, ext, pairs)
    assert code == 2 and "line 2: fake 'realA/0.png' and real 'realA/0.png' are the same file" in err
    (ext["fakes"] / "0.png").write_bytes((ext["real_a"] / "0.png").read_bytes())  # a copy: the same bytes
    pairs.write_text("fake,real\n0.png,realA/0.png\n")
    code, err = _evaluate(capsys, ext, pairs)
    assert code == 2 and "line 2: fake '0.png' and real 'realA/0.png' are the same bytes" in err
    code, err = _cli(capsys, "evaluate", "--fakes-ba", ext["fakes"], "--real-a", ext["real_a"], "--pairs-ab", pairs,
                     "--out", ext["out"], "--no-download")
    assert code == 2 and "--pairs-ab" in err and "needs --fakes-ab" in err


def test_pairs_test_csv_repeated_or_short_rows_are_refused(tmp_path):
    root = tmp_path / "cur"
    _images(root / "counterparts", ["a.png", "b.png"])
    (root / "pairs_test.csv").write_text(
        BOM + "domain,file,id,counterpart_path\nA,a.png,1,counterparts/b.png\nA,a.png,1,counterparts/b.png\n",
        encoding="utf-8")
    with pytest.raises(ValueError, match=r"pairs_test\.csv line 3: testA/a\.png is already listed on line 2"):
        held_out.read_pairs(root, ["a.png"], ["b.png"])
    (root / "pairs_test.csv").write_text("domain,file,id,counterpart_path\nA,a.png,1\n")
    with pytest.raises(ValueError, match=r"pairs_test\.csv line 2: 3 field\(s\), the header has 4"):
        held_out.read_pairs(root, ["a.png"], ["b.png"])
    (root / "pairs_test.csv").write_text(BOM + "domain,file,id,counterpart_path\nA,a.png,1,counterparts/b.png\n",
                                         encoding="utf-8")
    rows, note = held_out.read_pairs(root, ["a.png"], ["b.png"])
    assert note is None and [r["file"] for r in rows] == ["a.png"]


@pytest.fixture
def curated(tmp_path):
    root = tmp_path / "cur"
    for k, sub in enumerate(("trainA", "trainB", "testA", "testB")):
        _images(root / sub, ["0.png", "1.png"], k)
    return root


@pytest.mark.parametrize("rows, message", [
    ("testA/0.png,testB/0.png\ntestA/1.png\n", "line 3: 1 field(s), the header has 2 (a,b)"),
    ("testA/0.png,testB/0.png\ntestA/1.png,testB/0.png\n",
     "line 3: b 'testB/0.png' is already listed on line 2"),  # one masked photo, two people
    ("testA/0.png,testB/0.png\ntestA/0.png,testB/0.png\n", "line 3: b 'testB/0.png' is already listed on line 2"),
    ("trainA/0.png,testB/0.png\n", "line 2: a='trainA/0.png' is in train, b='testB/0.png' in test"),
    ("testA/1.png,trainB/1.png\n", "line 2: a='testA/1.png' is in test, b='trainB/1.png' in train"),
    ("testA/0.png,testA/1.png\n", "line 2: b='testA/1.png' is not an image of trainB/ or testB/"),
])
def test_curate_pairs_csv_problems_are_one_line_errors_before_any_work(curated, tmp_path, capsys, rows, message):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a,b\n" + rows)
    code, err = _cli(capsys, "curate", "--curated", curated, "--pairs", pairs, "--out", tmp_path / "out",
                     "--workers", "1", "--no-sheets")
    assert code == 2 and f"{pairs} {message}" in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "judgments.csv").exists()  # nothing measured


def test_curate_pairs_csv_with_bom_is_read(curated, tmp_path):
    from maskcycle.data import curate, readers

    pairs = tmp_path / "pairs.csv"
    pairs.write_text(BOM + "a,b\ntestA/0.png,testB/0.png\ntestA/0.png,testB/1.png\n", encoding="utf-8")
    ident = curate.read_pairs_csv(pairs, curated, readers.read_curated(curated))
    # one person, two masked photos: all three share an identity
    assert len(ident) == 3 and set(ident.values()) == {"pair:testA/0.png"}


def test_survey_pairs_listing_some_fakes_leaves_the_others_out_and_says_so(tmp_path, capsys):
    names = [f"f{k}.png" for k in range(8)]
    real_a, real_b = _images(tmp_path / "realA", names, 1), _images(tmp_path / "realB", names, 2)
    fakes_ab, fakes_ba = _images(tmp_path / "fakesAB", names, 3), _images(tmp_path / "fakesBA", names, 4)
    pairs = tmp_path / "pairs.csv"  # every AB fake, but only 4 of the 8 BA fakes
    pairs.write_text("fake,real\n" + "".join(f"fakesAB/{n},realA/{n}\n" for n in names)
                     + "".join(f"fakesBA/{n},realB/{n}\n" for n in names[:4]))
    for seed in range(4):
        out = tmp_path / f"q{seed}"
        code, err = _cli(capsys, "survey", "build", "--real-a", real_a, "--real-b", real_b, "--fakes-ab", fakes_ab,
                         "--fakes-ba", fakes_ba, "--pairs", pairs, "--n", 8, "--practice", 0, "--attention", 0,
                         "--seed", seed, "--out", out)
        assert code == 0 and "4 fake(s) of unknown identity (not in --pairs) were left out" in err
        assert json.loads((out / "survey.json").read_text())["fakes_left_out_no_identity"] == 4
        key = analysis.read_key(out)
        ba = {Path(p).name for p in key.source_file[key.direction == "BA"]}
        reals_b = {Path(p).name for p in key.source_file[(key.truth == "real") & (key.domain == "B")]}
        assert ba <= set(names[:4]) and not ba & reals_b  # never a real beside its own fake
    pairs.write_text("fake,real\nfakesAB/f0.png,realA/f0.png\nfakesAB/f0.png,realA/f1.png\n")
    code, err = _cli(capsys, "survey", "build", "--real-a", real_a, "--real-b", real_b, "--fakes-ab", fakes_ab,
                     "--fakes-ba", fakes_ba, "--pairs", pairs, "--out", tmp_path / "bad")
    assert code == 2 and "line 3: fake 'fakesAB/f0.png' is already listed on line 2" in err
