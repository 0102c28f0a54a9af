"""Issue 14: no command loses or silently corrupts a user's data; every bad input is named.

Each case checks the exit status, the message (file / key / value named) and that inputs and
earlier outputs are unchanged (checksums)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_image_folders, tiny_config
from maskcycle import cli
from maskcycle.config import TrialConfig
from maskcycle.data import cache
from maskcycle.data.images import ImageReadError, list_images, read_rgb
from maskcycle.io import atomic_path, folder_lock
from maskcycle.models import checkpoints
from maskcycle.settings import ConfigError
from maskcycle.training.trainer import train

REPO = Path(__file__).resolve().parents[1]


def checksums(*roots: Path) -> dict[str, str]:
    """sha256 of every file below the roots (hidden files too)."""
    out = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- 3. bad image files -----------------------------------------------------------------------
def _png_with_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height (a decompression bomb's header)."""
    Image.new("RGB", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("width", [10_000, 20_000])  # PIL warns at 1x its limit, refuses at 2x
def test_decompression_bomb_is_an_unreadable_file(tmp_path, width):
    bomb = _png_with_size(tmp_path / "bomb.png", width, 10_000)
    with pytest.raises(ImageReadError, match=r"bomb\.png: cannot decode image \(DecompressionBomb"):
        read_rgb(bomb)


def test_16_bit_pngs_are_scaled_to_8_bits(tmp_path):
    import cv2

    ramp = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1040).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(ramp).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode == "I;16"
    want = np.round(ramp / 257).astype(np.uint8)
    assert np.array_equal(read_rgb(tmp_path / "gray16.png")[..., 0], want)
    rgb16 = np.stack([ramp, ramp // 2, ramp // 4], axis=-1)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])  # cv2 writes BGR
    got = read_rgb(tmp_path / "rgb16.png").astype(int)
    assert np.abs(got - np.round(rgb16 / 257)).max() <= 1


def test_hidden_files_are_ignored(tmp_path):
    folder = make_image_folders(tmp_path, n=2, splits=("train",)) / "trainA"
    (folder / "._0000.png").write_bytes(b"\0\5\26\7 AppleDouble")
    (folder / ".DS_Store").write_bytes(b"Bud1")
    assert [p.name for p in list_images(folder)] == ["0000.png", "0001.png"]


def test_bad_training_images_are_all_named_and_skipped(tmp_path, capsys):
    root = make_image_folders(tmp_path / "data", n=3, splits=("train",))
    folder = root / "trainA"
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image")
    good = (folder / "0000.png").read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 2])
    before = checksums(folder)
    images = cache.cached_images(folder, 16)
    err = capsys.readouterr().err
    assert images.shape == (3, 16, 16, 3)
    assert "skipped 3 unreadable image(s)" in err
    assert all(name in err for name in ("empty.png", "notes.jpg", "cut.png"))
    assert checksums(folder) == before
    cache.cached_images(folder, 16)  # from the cache: still named
    assert "cut.png" in capsys.readouterr().err


def test_a_file_where_a_folder_is_expected(tmp_path):
    (tmp_path / "one.png").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"one\.png: expected a folder of images, found a file"):
        list_images(tmp_path / "one.png")


# --- 2. what the user asked for is what runs ------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("lr: 0.001\nlr: 0.002\n", r"key 'lr' given twice \(line 2\)"),
    ("", r"holds no settings"),
    ("# only a comment\n", r"holds no settings"),
    (b"name: caf\xe9\n", r"not UTF-8 text \(byte 9"),
])
def test_params_file_problems_are_named(tmp_path, capsys, text, message):
    params = tmp_path / "p.yaml"
    params.write_bytes(text if isinstance(text, bytes) else text.encode())
    code, _, err = run_cli(capsys, "train", "--params", params, "--out", tmp_path / "out")
    assert code == 2 and str(params) in err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["..", "."])
def test_trial_names_cannot_leave_the_output_folder(name):
    with pytest.raises(ConfigError, match="key 'name'"):
        TrialConfig(name=name)


def test_sweep_refuses_a_finished_trial_whose_yaml_changed(tmp_path, capsys):
    trial = tmp_path / "sweep" / "a"
    trial.mkdir(parents=True)
    TrialConfig(name="a", lr=0.001, n_epochs=1, n_epochs_decay=0).to_yaml(trial / "config.yaml")
    (trial / "run.json").write_text(json.dumps({"status": "finished"}))
    (trial / "metrics.json").write_text(json.dumps({"finished": True}))
    (trial / "02_training.ipynb").write_text("{}")
    params = tmp_path / "a.yaml"
    params.write_text("lr: 2e-3\nn_epochs: 1\nn_epochs_decay: 0\n")
    before = checksums(trial)
    code, _, err = run_cli(capsys, "sweep", params, "--out", tmp_path / "sweep")
    assert code == 125
    assert "settings changed since trial a finished" in err and "lr: 0.001 -> 0.002" in err
    assert "move or delete" in err
    assert checksums(trial) == before


# --- 5. one trained trial, rerun in many ways -------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data, trial folder, params YAML) of a finished 1-epoch trial with latest.pt and previous.pt."""
    root = tmp_path_factory.mktemp("trained")
    data = make_image_folders(root / "data", n=4, size=40)
    cfg = tiny_config(data, n_epochs=1, n_epochs_decay=0, save_latest_freq=2)
    train(cfg, root / "trial", progress=False)
    params = root / "trial.yaml"
    cfg.to_yaml(params)
    assert (root / "trial" / "checkpoints" / checkpoints.PREVIOUS).exists()
    return data, root / "trial", params


@pytest.fixture
def trial(trained, tmp_path):
    data, folder, params = trained
    copy = tmp_path / "trial"
    shutil.copytree(folder, copy)
    return data, copy, params


def test_refused_rerun_leaves_the_finished_trial_as_it_was(trial, capsys):
    data, folder, params = trial
    before = checksums(folder, data)
    code, _, err = run_cli(capsys, "train", "--params", params, "--set", "lr=0.5", "--out", folder)
    assert code == 2 and "lr: 0.0002 -> 0.5" in err and "latest.pt" in err
    assert checksums(folder, data) == before  # run.json still says finished


def test_resume_with_other_data_is_refused_with_moved_data_accepted(trial, tmp_path, capsys):
    data, folder, params = trial
    other = make_image_folders(tmp_path / "other", n=4, size=40, seed=9)
    (other / "trainA" / "0003.png").unlink()
    before = checksums(folder, data)
    code, _, err = run_cli(capsys, "train", "--params", params, "--set", f"dataroot={other}", "--out", folder)
    assert code == 2 and "dataroot" in err and "other images" in err
    assert checksums(folder, data) == before
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    code, _, err = run_cli(capsys, "train", "--params", params, "--set", f"dataroot={moved}", "--out", folder)
    assert code == 0, err


def test_second_training_into_the_same_folder_is_refused(trial, capsys):
    data, folder, params = trial
    before = checksums(folder)
    with folder_lock(folder):
        code, _, err = run_cli(capsys, "train", "--params", params, "--out", folder)
    assert code == 2 and "a training is already running there" in err and str(folder) in err
    assert checksums(folder) == before


def test_rerun_repairs_a_cut_losses_line_and_removes_leftover_temp_files(trial, capsys):
    data, folder, params = trial
    losses = folder / "losses.csv"
    good = losses.read_text()
    losses.write_text(good + "1,3,8,0.0002,0.3")  # a row cut mid-write
    leftovers = [folder / ".metrics.json.ab12cd34.tmp", folder / "samples" / ".epoch_001.png.zz99yy88.tmp.png"]
    for p in leftovers:
        p.write_bytes(b"half")
    code, _, err = run_cli(capsys, "train", "--params", params, "--out", folder)
    assert code == 0, err
    assert losses.read_text() == good
    assert not any(p.exists() for p in leftovers)


def test_atomic_temp_names_carry_the_mark(tmp_path):
    with atomic_path(tmp_path / "x.png", suffix=".png") as tmp:
        assert tmp.name.startswith(".x.png.") and tmp.name.endswith(".tmp.png")
        tmp.write_bytes(b"1")


def test_corrupt_latest_falls_back_to_previous(trial, capsys):
    data, folder, params = trial
    latest = folder / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:100])
    code, _, err = run_cli(capsys, "train", "--params", params, "--out", folder)
    assert code == 0, err
    assert "latest.pt: cannot load checkpoint" in err and "resuming from" in err and "previous.pt" in err


def test_corrupt_checkpoints_say_the_way_out_and_never_advise_unsafe_loading(trial, capsys):
    data, folder, params = trial
    ck = folder / "checkpoints"
    (ck / "latest.pt").write_bytes(b"garbage")
    import torch

    torch.save({"x": Path("/etc")}, ck / "previous.pt")  # holds a pickled Python object
    before = checksums(folder)
    code, _, err = run_cli(capsys, "train", "--params", params, "--out", folder)
    assert code == 2 and "latest.pt" in err and "previous.pt" in err
    assert "to train the trial again from the start" in err and "refused" in err
    assert "weights_only=False" not in err and "Traceback" not in err
    assert checksums(folder) == before


@pytest.mark.slow
def test_sigterm_stops_with_a_saved_state(tmp_path):
    data = make_image_folders(tmp_path / "data", n=6, size=40)
    params = tmp_path / "p.yaml"
    tiny_config(data, n_epochs=50, n_epochs_decay=0, save_latest_freq=10_000).to_yaml(params)
    out = tmp_path / "trial"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "lib"), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "maskcycle", "train", "--params", str(params), "--out", str(out)],
                            env=env, stderr=subprocess.PIPE, text=True)
    losses = out / "losses.csv"
    while proc.poll() is None and not (losses.exists() and len(losses.read_text().splitlines()) > 2):
        pass
    proc.terminate()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    assert "stopped" in err and "rerun the same command to resume" in err
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "stopped" and "SIGTERM" in run["error"]
    assert checkpoints.load(out / "checkpoints" / "latest.pt", "state")["images"] > 0


# --- 4. one clear line ----------------------------------------------------------------------------
def test_full_disk_is_named(tmp_path, monkeypatch):
    def full(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")

    monkeypatch.setattr(checkpoints.torch, "save", full)
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(100, 100, 0))
    with pytest.raises(OSError) as err:
        checkpoints.atomic_save({}, tmp_path / "latest.pt")
    line = cli.os_error_line(err.value)
    assert err.value.errno == errno.ENOSPC and "latest.pt: no space left on device" in line
    assert list(tmp_path.iterdir()) == []  # no temp file left


@pytest.mark.parametrize("code, words", [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied")])
def test_unwritable_output_is_one_line(tmp_path, capsys, monkeypatch, code, words):
    params = tmp_path / "p.yaml"
    params.write_text("n_epochs: 1\n")
    from maskcycle.training import trainer

    def refuse(*a, **k):
        raise OSError(code, os.strerror(code), str(tmp_path / "out"))

    monkeypatch.setattr(trainer, "train", refuse)
    rc, _, err = run_cli(capsys, "train", "--params", params, "--out", tmp_path / "out")
    assert rc == 2 and words in err and str(tmp_path / "out") in err and "Traceback" not in err


@pytest.mark.parametrize("argv, words", [
    (["evaluate", "--sweep", "x", "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (["evaluate", "--sweep", "x", "--batch-size", "-3"], "argument --batch-size: must be >= 1, got -3"),
    (["translate", "--checkpoint", "c.pt", "--direction", "AB", "--input", "i", "--output", "o", "--size", "0"],
     "argument --size: must be >= 1, got 0"),
])
def test_impossible_numbers_are_usage_errors(capsys, argv, words):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and words in err


def test_non_utf8_response_file_is_named(tmp_path):
    from maskcycle.survey import analysis
    from test_survey_stats import HEAD, KEY, session

    (tmp_path / "key.csv").write_text(KEY)
    (tmp_path / "resp").mkdir()
    bad = tmp_path / "resp" / "latin1.csv"
    bad.write_bytes((HEAD + session("Zoé", "2026-01-01T10:00:00Z")).encode("latin-1"))
    with pytest.raises(analysis.SurveyDataError, match=r"latin1\.csv: not UTF-8"):
        analysis.read_responses(tmp_path / "resp", tmp_path)


def test_survey_analyse_prints_who_was_set_aside(tmp_path, capsys):
    from test_survey_stats import HEAD, KEY, session

    (tmp_path / "key.csv").write_text(KEY)
    r = tmp_path / "resp"
    r.mkdir()
    (r / "a.csv").write_text(HEAD + session("p1", "2026-01-01T10:00:00Z"))
    (r / "b.csv").write_text(HEAD + session("p3", "2026-01-01T12:00:00Z", answers=("fake", "fake", "real", "real")))
    (r / "c.csv").write_text(HEAD + session("p2", "2026-01-01T11:00:00Z", ids=("i1", "i2")))
    code, out, err = run_cli(capsys, "survey", "analyse", "--survey", tmp_path, "--responses", r, "--n-boot", 20)
    assert code == 0, err
    assert "sessions set aside: 1" in out and "participant p2" in out and "answered 3 of 5" in out


# --- 1. never modify an input ----------------------------------------------------------------------
def test_translate_refuses_an_existing_file_as_output(tmp_path, capsys, generator):
    photos = make_image_folders(tmp_path / "in", n=2, splits=("test",)) / "testA"
    (tmp_path / "out.png").write_bytes(b"keep me")
    before = checksums(tmp_path)
    code, _, err = run_cli(capsys, "translate", "--checkpoint", generator, "--direction", "AB",
                           "--input", photos, "--output", tmp_path / "out.png", "--aligned", "--device", "cpu")
    assert code == 2 and "out.png is an existing file" in err
    assert checksums(tmp_path) == before


def test_translate_same_stem_files_keep_their_own_outputs(tmp_path, capsys, generator):
    folder = tmp_path / "in"
    folder.mkdir()
    img = np.full((40, 40, 3), 120, np.uint8)
    Image.fromarray(img).save(folder / "face.png")
    Image.fromarray(img).save(folder / "face.jpg")
    _png_with_size(folder / "bomb.png", 20_000, 20_000)
    before = checksums(folder)
    code, out, err = run_cli(capsys, "translate", "--checkpoint", generator, "--direction", "AB",
                             "--input", folder, "--output", tmp_path / "out", "--aligned", "--device", "cpu")
    assert code == 1 and "bomb.png" in err and "unreadable" in err  # reported, the others still written
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["face.jpg", "face.png"]
    assert "wrote 2 of 3" in out
    assert checksums(folder) == before


def test_translate_nothing_written_is_non_zero(tmp_path, capsys, generator):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "x.png").write_bytes(b"")
    code, out, _ = run_cli(capsys, "translate", "--checkpoint", generator, "--direction", "AB",
                           "--input", folder, "--output", tmp_path / "out", "--aligned", "--device", "cpu")
    assert code == 1 and "wrote 0 of 1" in out


def test_curate_refuses_its_source_as_output(tmp_path, capsys):
    src = make_image_folders(tmp_path / "src", n=3, size=40)
    before = checksums(src)
    code, _, err = run_cli(capsys, "curate", "--curated", src, "--out", src, "--load-size", 36)
    assert code == 2 and "overlaps the source folder" in err
    code, _, err = run_cli(capsys, "curate", "--curated", src, "--out", src / "curated", "--load-size", 36)
    assert code == 2 and "overlaps the source folder" in err
    assert checksums(src) == before


def test_curate_removes_only_files_it_wrote(tmp_path, capsys):
    src = make_image_folders(tmp_path / "src", n=3, size=40)
    out = tmp_path / "out"
    args = ["curate", "--curated", src, "--out", out, "--load-size", 36, "--workers", 1, "--sharpness-min", 0]
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    (out / "trainA" / "mine.png").write_bytes(b"a file curation did not write")
    (src / "trainA" / "0002.png").unlink()  # 0002 leaves the split: its written copy is stale
    before = checksums(src)
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    assert (out / "trainA" / "mine.png").read_bytes() == b"a file curation did not write"
    assert not (out / "trainA" / "0002.png").exists()
    assert checksums(src) == before


# --- 6. exit codes ---------------------------------------------------------------------------------
def test_evaluate_is_non_zero_when_a_trial_could_not_be_evaluated(tmp_path, capsys):
    from conftest import make_paired_curated, register_tiny_extractor

    curated = make_paired_curated(tmp_path)
    trial = tmp_path / "sweep" / "broken"
    trial.mkdir(parents=True)
    tiny_config(curated, name="broken").to_yaml(trial / "config.yaml")
    (trial / "run.json").write_text(json.dumps({"status": "finished"}))
    (trial / "metrics.json").write_text(json.dumps({"finished": True}))
    code, _, err = run_cli(capsys, "evaluate", "--sweep", tmp_path / "sweep", "--curated", curated,
                           "--feature-extractor", register_tiny_extractor(), "--device", "cpu")
    assert code == 1 and "broken: could not be evaluated" in err


# --- 7. setup_env.sh ---------------------------------------------------------------------------------
def test_sourcing_setup_env_leaves_the_shell_options_alone(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python")
    (venv / "bin" / "activate").write_text("# a stand-in venv: nothing to do\n")
    stamp = hashlib.sha256((REPO / "requirements.lock").read_bytes() + (REPO / "pyproject.toml").read_bytes())
    (venv / ".maskcycle-stamp").write_text(stamp.hexdigest()[:16] + "\n")
    script = ('before="$-|$(set +o)"; source lib/setup_env.sh; false; echo alive; '
              '[ "$-|$(set +o)" = "$before" ] && echo unchanged')
    out = subprocess.run(["bash", "-c", script], cwd=REPO, env={**os.environ, "MASKCYCLE_VENV": str(venv)},
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["alive", "unchanged"], out.stderr
    assert "creating" not in out.stderr  # the stand-in venv was reused, not rebuilt


# --- 2./1. already on main, pinned here with the others ------------------------------------------
def test_repeated_set_accumulates(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("n_epochs: 1\n")
    args = cli.build_parser().parse_args(["train", "--params", str(params), "--out", str(tmp_path / "o"),
                                          "--set", "lr=2e-4", "--set", "ngf=4", "batch_size=2"])
    cfg = TrialConfig.from_yaml(args.params, args.set)
    assert (cfg.lr, cfg.ngf, cfg.batch_size) == (2e-4, 4, 2)


def test_translate_refuses_its_input_as_output(tmp_path, capsys, generator):
    photos = make_image_folders(tmp_path / "in", n=2, splits=("test",)) / "testA"
    before = checksums(photos)
    for output in (photos, photos / "fakes"):
        code, _, err = run_cli(capsys, "translate", "--checkpoint", generator, "--direction", "AB",
                               "--input", photos, "--output", output, "--aligned", "--device", "cpu")
        assert code == 2 and "is (inside) the input folder" in err
    assert checksums(photos) == before
