"""Issue 24: every checkpoint a command reads goes through models.checkpoints.load/check: a file of
the wrong shape is a one-line error naming the file, what it holds and what was expected (exit 2),
never a traceback; nothing is unpickled beyond tensors and plain values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import tiny_config
from maskcycle.cli import main
from maskcycle.config import TrialConfig
from maskcycle.data.images import write_png
from maskcycle.models import checkpoints
from maskcycle.models.networks import build_generator
from maskcycle.training.trainer import RunState

LIB = Path(__file__).resolve().parents[1] / "lib" / "maskcycle"
SMALL = dict(netG="resnet_6blocks", ngf=4, ndf=4, load_size=36, crop_size=32)


@pytest.fixture
def photo(tmp_path) -> Path:
    write_png(tmp_path / "in" / "a.png", np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return tmp_path / "in"


def _translate(capsys, checkpoint: Path, photo: Path, *extra) -> tuple[int, str]:
    code = main(["translate", "--checkpoint", str(checkpoint), "--direction", "AB", "--input", str(photo),
                 "--output", str(photo.parent / "out"), "--aligned", "--device", "cpu", *map(str, extra)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _generators(**changes) -> dict:
    cfg = TrialConfig(**SMALL)
    return {"format": checkpoints.GENERATORS_FORMAT, "config": cfg.to_dict(), "epoch": 1,
            "G_AB": build_generator(cfg).state_dict(), **changes}


@pytest.mark.parametrize("obj, holds", [
    ([1, 2], "holds a list of 2 item(s)"),
    (torch.zeros(3), "holds a bare tensor of shape (3,)"),
    ({"format": checkpoints.GENERATORS_FORMAT, "G_AB": {}}, "no saved settings (key 'config' holds nothing)"),
    ({"epoch": 1}, "holds a mapping with keys 'epoch', with no 'format' key"),
    ({"format": "other"}, "format 'other'"),
    ({"weight": torch.zeros(1)}, "holds a mapping with keys 'weight', with no 'format' key (it looks like a bare "
                                 "generator state dict"),
    (_generators(config=[1]), "no saved settings (key 'config' holds a list of 1 item(s))"),
    (_generators(G_AB=torch.zeros(2)), "generator G_AB holds a bare tensor of shape (2,)"),
    ({k: v for k, v in _generators().items() if k != "G_AB"}, "no generator (G_AB or G_BA) in it"),
    ({"format": checkpoints.STATE_FORMAT, "config": TrialConfig(**SMALL).to_dict(), "model": [1]},
     "key 'model' holds a list of 1 item(s)"),
])
def test_our_checkpoint_of_the_wrong_shape_is_named(tmp_path, photo, capsys, obj, holds):
    path = tmp_path / "latest.pt"
    torch.save(obj, path)
    code, err = _translate(capsys, path, photo)
    assert code == 2 and f"{path}: {holds}" in err and "expected a maskcycle checkpoint" in err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_our_checkpoint_with_settings_or_weights_that_do_not_fit(tmp_path, photo, capsys):
    path = tmp_path / "latest.pt"
    torch.save(_generators(config={**TrialConfig(**SMALL).to_dict(), "lr": -1}), path)
    code, err = _translate(capsys, path, photo)
    assert code == 2 and f"{path} (saved config): key 'lr': value -1" in err
    torch.save(_generators(G_AB=build_generator(TrialConfig(**{**SMALL, "ngf": 8})).state_dict()), path)
    code, err = _translate(capsys, path, photo)
    assert code == 2 and f"{path}: weights do not fit the network built from its saved settings" in err
    torch.save(_generators(), path)
    code, err = _translate(capsys, path, photo, "--set", "ngf=8")  # ours carry their settings
    assert code == 2 and "--set is for a reference checkpoint" in err
    assert _translate(capsys, path, photo)[0] == 0


@pytest.mark.parametrize("obj, holds", [
    (torch.zeros(3), "holds a bare tensor of shape (3,)"),
    ([torch.zeros(3)], "holds a list of 1 item(s)"),
    ({"model.1.weight": [1.0]}, "holds a mapping with keys 'model.1.weight'"),
    ({}, "holds an empty mapping"),
    (_generators(), "is a maskcycle checkpoint"),
])
def test_reference_checkpoint_of_the_wrong_shape_is_named(tmp_path, photo, capsys, obj, holds):
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(obj, path)
    code, err = _translate(capsys, path, photo)
    assert code == 2 and f"{path}: {holds}" in err and "expected the reference implementation's generator" in err


def test_reference_of_another_architecture_names_the_settings_and_translate_takes_them(tmp_path, photo, capsys):
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(build_generator(TrialConfig(**SMALL)).state_dict(), path)  # resnet_6blocks, ngf 4
    code, err = _translate(capsys, path, photo)
    assert code == 2 and "built from netG=resnet_9blocks ngf=64 norm=instance; give the run's own with --set" in err
    code, err = _translate(capsys, path, photo, "--set", "netG=resnet_6blocks", "ngf=4", "crop_size=32",
                           "load_size=36")
    assert code == 0 and (photo.parent / "out" / "a.png").is_file()
    code, err = _translate(capsys, path, photo, "--set", "ngf=0")
    assert code == 2 and "key 'ngf': value 0 must be >= 1" in err


@pytest.mark.parametrize("latest, holds", [
    ("list", "holds a list of 2 item(s); expected a maskcycle training state"),
    ("generators", "format 'maskcycle-generators-1'"),
    ("no epoch", "key 'epoch' holds nothing"),
    ("no networks", "no generator (G_AB or G_BA) in it"),
    ("G_AB only", "its saved state does not fit the cyclegan trial's networks and optimisers (KeyError"),
])
def test_resume_from_a_state_of_the_wrong_shape_is_named(tiny_data, tmp_path, capsys, latest, holds):
    cfg = tiny_config(tiny_data, **SMALL)
    state = {"format": checkpoints.STATE_FORMAT, "config": cfg.to_dict(),
             "model": {"G_AB": build_generator(cfg).state_dict()}}
    state |= {f.name: f.default for f in dataclasses.fields(RunState)}
    obj = {"list": [1, 2], "generators": _generators(), "no epoch": {k: v for k, v in state.items() if k != "epoch"},
           "no networks": state | {"model": {}}, "G_AB only": state}[latest]
    out = tmp_path / "trial"
    (out / "checkpoints").mkdir(parents=True)
    torch.save(obj, out / "checkpoints" / "latest.pt")
    params = tmp_path / "t.yaml"
    params.write_text(yaml.safe_dump(cfg.to_dict()))
    code = main(["train", "--params", str(params), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and f"{out / 'checkpoints' / 'latest.pt'}" in err and holds in err and "Traceback" not in err


def test_one_loader_and_the_state_fields_match_the_trainer():
    readers = [p.relative_to(LIB).as_posix() for p in LIB.rglob("*.py") if "torch.load(" in p.read_text()]
    assert readers == ["models/checkpoints.py"]
    assert set(checkpoints.STATE_FIELDS) == {f.name for f in dataclasses.fields(RunState)}
