"""Issue 24, item 2: one output rule for every command (`io.check_output`). An output that is,
holds or lies inside an input, or that is a file the project wrote for a later step (a survey's
key, a trial's config or checkpoint), is refused before any work: exit 2, naming both paths, and
nothing changed on disk. One test per command."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import make_image_folders, tiny_config
from maskcycle.data import demo
from maskcycle.io import OutputOverlapError, check_output
from test_bad_inputs import checksums, run_cli


def refused(capsys, tmp_path, *argv, words=("overlaps the source",)):
    before = checksums(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err  # one line
    for w in words:
        assert w in err, err
    assert checksums(tmp_path) == before
    return err


@pytest.fixture
def photos(tmp_path):
    return make_image_folders(tmp_path / "in", n=2, size=40, splits=("test",)) / "testA"


@pytest.fixture
def survey(tmp_path):
    s = tmp_path / "survey"
    s.mkdir()
    for name in ("key.csv", "survey.json", "survey.html"):
        (s / name).write_text(f"{name}: the survey's own file\n")
    (tmp_path / "responses").mkdir()
    return s


# --- the helper ---------------------------------------------------------------------------------------
def test_check_output_relations(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"x")
    for out, words in ((folder, "is (inside) the input folder"), (folder / "sub", "is (inside) the input folder"),
                       (tmp_path, "holds the input folder")):
        with pytest.raises(OutputOverlapError, match=words.replace("(", r"\(").replace(")", r"\)")):
            check_output(out, [("--input", folder)])
    with pytest.raises(OutputOverlapError, match="is the input file"):
        check_output(folder / "a.png", [("--input", [folder / "a.png"])], kind="file")
    assert check_output(tmp_path / "elsewhere", [("--input", folder)]) == (tmp_path / "elsewhere").resolve()


def test_symlink_loop_is_one_line(tmp_path, capsys):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    code, _, err = run_cli(capsys, "faces", "--input", loop, "--out", tmp_path / "f.csv")
    assert code == 2 and err.count("\n") == 1 and "loop" in err and "Traceback" not in err, err


# --- one test per command ---------------------------------------------------------------------------
def test_faces(tmp_path, capsys, photos):
    refused(capsys, tmp_path, "faces", "--input", photos, "--out", photos / "0000.png",
            words=("--out", "0000.png", str(photos)))
    params = tmp_path / "params.yaml"
    params.write_text("lr: 0.1\n")
    refused(capsys, tmp_path, "faces", "--input", photos, "--out", params, words=("params.yaml", "refusing"))


def test_translate(tmp_path, capsys, photos):
    ckpt = tmp_path / "models" / "g.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"not read: refused before")
    refused(capsys, tmp_path, "translate", "--checkpoint", ckpt, "--direction", "AB", "--input", photos,
            "--output", photos, "--aligned", words=("is (inside) the input folder", str(photos)))
    refused(capsys, tmp_path, "translate", "--checkpoint", ckpt, "--direction", "AB", "--input", photos / "0000.png",
            "--output", ckpt.parent, "--aligned", words=("holds the input file", "g.pt", "--checkpoint"))


def test_curate(tmp_path, capsys):
    src = make_image_folders(tmp_path / "src", n=2, size=40)
    refused(capsys, tmp_path, "curate", "--curated", src, "--out", src / "trainA" / "x", "--load-size", 36,
            words=("--out", "is (inside) the input folder", "--curated"))


def test_evaluate(tmp_path, capsys, photos):
    refused(capsys, tmp_path, "evaluate", "--fakes-ab", photos, "--real-b", photos, "--out", tmp_path / "ev",
            words=("--real-b", "same folder as --fakes-ab"))
    other = make_image_folders(tmp_path / "other", n=2, size=40, splits=("test",)) / "testB"
    refused(capsys, tmp_path, "evaluate", "--fakes-ab", photos, "--real-b", other, "--out", photos / "m",
            words=("is (inside) the input folder", "--fakes-ab"))
    refused(capsys, tmp_path, "evaluate", "--reference", tmp_path, "--curated", photos.parent, "--out", photos.parent,
            words=("is (inside) the input folder", "--curated"))
    trial = tmp_path / "trial"
    trial.mkdir()
    (trial / "config.yaml").write_text("name: t\n")
    (trial / "metrics.json").write_text("{}\n")  # the trial's own metrics: not to be replaced by external ones
    refused(capsys, tmp_path, "evaluate", "--fakes-ab", photos, "--real-b", other, "--out", trial,
            words=("is a trial folder", "config.yaml"))


def test_survey_build(tmp_path, capsys, photos):
    refused(capsys, tmp_path, "survey", "build", "--real-a", photos, "--real-b", photos, "--fakes-ab", photos,
            "--fakes-ba", photos, "--allow-unpaired", "--out", photos.parent,
            words=("holds the input folder", "--real-a"))


def test_survey_analyse(tmp_path, capsys, survey):
    err = refused(capsys, tmp_path, "survey", "analyse", "--survey", survey, "--responses", tmp_path / "responses",
                  "--out", survey / "key.csv", words=("key.csv", "answer key"))
    assert "refusing to replace" in err


def test_survey_simulate(tmp_path, capsys, survey):
    refused(capsys, tmp_path, "survey", "simulate", "--survey", survey, "--out", survey,
            words=("holds the input file", "key.csv"))
    photos = make_image_folders(tmp_path / "in", n=2, size=40, splits=("test",)) / "testA"
    refused(capsys, tmp_path, "translate", "--checkpoint", tmp_path / "g.pt", "--direction", "AB", "--input", photos,
            "--output", survey, "--aligned", words=("is a survey folder", "key.csv"))


def test_bench(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("lr: 0.1\n")
    refused(capsys, tmp_path, "bench", "--out", params, words=("params.yaml", "a params file", "refusing"))
    (tmp_path / "notes.txt").write_text("mine")
    refused(capsys, tmp_path, "bench", "--out", tmp_path / "notes.txt", words=("did not write",))


def test_sweep(tmp_path, capsys):
    data = make_image_folders(tmp_path / "data", n=2, size=40)
    params = tmp_path / "params" / "t1.yaml"
    params.parent.mkdir()
    tiny_config(data, name="t1").to_yaml(params)
    refused(capsys, tmp_path, "sweep", params, "--out", params.parent, words=("holds the input file", "t1.yaml"))
    refused(capsys, tmp_path, "sweep", params, "--out", data / "sweep", words=("is (inside) the input folder",
                                                                             "dataroot"))


def test_train(tmp_path, capsys):
    data = make_image_folders(tmp_path / "data", n=2, size=40)
    params = tmp_path / "t.yaml"
    tiny_config(data).to_yaml(params)
    refused(capsys, tmp_path, "train", "--params", params, "--out", data / "trainA",
            words=("is (inside) the input folder", "dataroot"))


def test_demo_data_never_overwrites_a_file_it_did_not_write(tmp_path, capsys):
    out = tmp_path / "raw"
    real = demo.ffhq_path(out / "ffhq", 0)
    real.parent.mkdir(parents=True)
    Image.fromarray(np.full((64, 64, 3), 7, np.uint8)).save(real)  # a real FFHQ image already there
    refused(capsys, tmp_path, "demo-data", "--out", out, "--n-ids", 2, "--size", 32, "--workers", 1,
            words=("did not write", "00000.png"))
    code, _, err = run_cli(capsys, "demo-data", "--out", tmp_path / "fresh", "--n-ids", 2, "--size", 32,
                           "--workers", 1)
    assert code == 0, err
    # its own files are rewritten when the settings change, and more ids are added
    code, _, err = run_cli(capsys, "demo-data", "--out", tmp_path / "fresh", "--n-ids", 3, "--size", 32,
                           "--workers", 1)
    assert code == 0, err
    assert json.loads((tmp_path / "fresh" / "demo_settings.json").read_text())["n_ids"] == 3


def test_survey_export(tmp_path, capsys, survey):
    db = tmp_path / "answers.sqlite"
    db.write_bytes(b"SQLite format 3\x00")
    refused(capsys, tmp_path, "survey", "export", "--db", db, "--out", survey, "--survey", survey,
            words=("holds the input file", "key.csv"))
    refused(capsys, tmp_path, "survey", "export", "--db", db, "--out", survey, words=("is a survey folder",))
    refused(capsys, tmp_path, "survey", "export", "--db", db, "--out", db, words=("is an existing file",))


def test_survey_invite(tmp_path, capsys, survey):
    db = tmp_path / "answers.sqlite"
    refused(capsys, tmp_path, "survey", "invite", "--survey", survey, "--db", db, "--n", "3", "--out",
            survey / "key.csv", words=("key.csv", "refusing to replace"))
    (tmp_path / "notes.txt").write_text("mine")
    refused(capsys, tmp_path, "survey", "invite", "--survey", survey, "--db", db, "--n", "3", "--out",
            tmp_path / "notes.txt", words=("did not write",))
    assert not db.exists()
