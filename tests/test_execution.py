"""`precision/channels_last/batched_passes: auto`: the path chosen per device, recorded, kept on resume."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from conftest import tiny_config
from maskcycle.config import TrialConfig
from maskcycle.models import checkpoints, execution
from maskcycle.models.cyclegan import build as build_cyclegan
from maskcycle.settings import ConfigError
from maskcycle.training.trainer import train

NATIVE = execution.Capability("cpu", "test CPU with bf16", True, "bf16 is native (test)")
EMULATED = execution.Capability("cpu", "test CPU without bf16", False, "bf16 would be emulated (test)")
AUTO = dict(precision="auto", channels_last="auto", batched_passes="auto")


def test_auto_picks_the_fast_path_only_where_bf16_is_native():
    assert {k: v for k, (v, _) in execution.choose(NATIVE).items()} == \
        {"precision": "bf16", "channels_last": True, "batched_passes": True}
    assert {k: v for k, (v, _) in execution.choose(EMULATED).items()} == \
        {"precision": "fp32", "channels_last": False, "batched_passes": False}
    old_gpu = execution.Capability("cuda:0", "V100 (sm_70)", False, "no bf16 tensor cores")
    assert {k: v for k, (v, _) in execution.choose(old_gpu).items()} == \
        {"precision": "fp32", "channels_last": False, "batched_passes": True}


@pytest.mark.parametrize("env, isa", [({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, "AVX2"),
                                      ({"ATEN_CPU_CAPABILITY": "default"}, "DEFAULT"),
                                      ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, None)])
def test_forced_down_kernels_are_never_taken_for_native_bf16(env, isa, monkeypatch):
    """The variables that force PyTorch's kernels down (as on an AVX2-only CPU) make bf16
    emulated, whatever the hardware flags say: auto must then choose fp32."""
    code = ("import torch; from maskcycle.models import execution as e; c = e.cpu_capability(); "
            "print(torch.backends.cpu.get_cpu_capability(), c.bf16_native, c.why, sep='|')")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    aten, native, why = out.split("|")
    assert native == "False", out
    if isa:
        assert aten == isa and isa in why


def test_explicit_values_mean_exactly_that(monkeypatch):
    monkeypatch.setattr(execution, "capability", lambda device: EMULATED)
    exe = execution.resolve(TrialConfig(precision="bf16", channels_last=True, batched_passes=False), "cpu")
    assert (exe.cfg.precision, exe.cfg.channels_last, exe.cfg.batched_passes) == ("bf16", True, False)
    assert set(exe.reasons.values()) == {"asked for"}


def test_bf16_where_it_is_emulated_runs_with_one_warning(monkeypatch, capsys):
    monkeypatch.setattr(execution, "capability", lambda device: EMULATED)
    execution.warn_if_emulated(execution.resolve(TrialConfig(precision="bf16"), "cpu"))
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "emulated" in err and "20x" in err
    execution.warn_if_emulated(execution.resolve(TrialConfig(**AUTO), "cpu"))  # auto never picks it there
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("key, value", [("precision", "fp16"), ("channels_last", "maybe"), ("batched_passes", 2)])
def test_unknown_execution_values_are_refused_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        TrialConfig.from_dict({key: value})


def test_auto_never_reaches_the_networks():
    with pytest.raises(RuntimeError, match="still 'auto'"):
        build_cyclegan(TrialConfig(netG="resnet_6blocks", ngf=8, ndf=8, crop_size=32, load_size=36, **AUTO))


@pytest.mark.slow
def test_trial_records_its_path_and_keeps_it_when_resumed_elsewhere(tiny_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "trial"
    cfg = tiny_config(tiny_data, n_epochs=1, n_epochs_decay=1, **AUTO)
    monkeypatch.setattr(execution, "capability", lambda device: NATIVE)
    train(cfg, out, stop_after_epochs=1, progress=False)
    assert "execution on test CPU with bf16: precision bf16" in capsys.readouterr().err
    record = json.loads((out / "run.json").read_text())["execution"]
    assert record["precision"] == "bf16" and record["channels_last"] is True and record["bf16_native"]
    assert record["reasons"]["precision"] == "bf16 is native (test)"
    assert yaml.safe_load((out / "config.yaml").read_text())["precision"] == "auto"  # as asked

    monkeypatch.setattr(execution, "capability", lambda device: EMULATED)  # "another machine"
    train(cfg, out, progress=False)
    record = json.loads((out / "run.json").read_text())["execution"]
    assert record["precision"] == "bf16" and record["kept_from_checkpoint"]
    assert "this device would pick fp32" in record["note"]
    assert "this device would pick fp32" in capsys.readouterr().err
    # generator snapshots keep "auto": evaluation on this machine translates in its own fp32
    loaded_cfg, G_AB, _ = checkpoints.load_generators(out / "checkpoints" / "epoch_002.pt")
    assert loaded_cfg.precision == "fp32" and G_AB is not None


def test_a_trial_config_with_auto_translates_on_any_device():
    """Evaluation reads a trial's config.yaml, which keeps "auto": translation decides for its device."""
    import numpy as np

    from maskcycle.evaluation.translate import translate_array

    cfg = TrialConfig(netG="resnet_6blocks", ngf=8, ndf=8, crop_size=32, load_size=36, **AUTO)
    G = build_cyclegan(execution.resolve(cfg, "cpu").cfg).G_AB
    out = translate_array(G, np.zeros((2, 32, 32, 3), np.uint8), cfg)
    assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
