"""Issue 24: settings that cannot work are refused before any work, naming the keys and values
(network geometry vs crop size), and YAML merge keys are read as YAML defines them."""

from __future__ import annotations

import warnings

import pytest
import torch

from maskcycle.cli import main
from maskcycle.config import TrialConfig, patchgan_side, resnet_layers
from maskcycle.models.networks import NLayerDiscriminator, ResnetGenerator, build_generator
from maskcycle.settings import ConfigError


def _runs(net: torch.nn.Module, side: int):
    """The output side of a training-mode forward pass of one image, or None when torch refuses."""
    net.train()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return net(torch.randn(1, 3, side, side)).shape[-1]
    except (RuntimeError, ValueError):
        return None


@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("norm", ["instance", "none"])
def test_patchgan_rule_matches_what_torch_runs(antialias, norm):
    """The rule in config (pure arithmetic) against the real network, depths 1..6, at the smallest
    side (a multiple of 4) the rule accepts and 4 px either side of it."""
    torch.manual_seed(0)
    disagree = []
    for n in range(1, 7):
        net = NLayerDiscriminator(3, 1, n, norm, antialias)
        least = next(s for s in range(4, 400, 4) if patchgan_side(s, n, antialias, norm == "instance"))
        for side in {max(4, least - 4), least, least + 4}:
            want = _runs(net, side)
            got = patchgan_side(side, n, antialias, norm_needs_two=norm == "instance") or None
            if got != want:
                disagree.append((n, side, got, want))
    assert not disagree


def test_resnet_generator_needs_crop_8():
    for side, works in ((4, False), (8, True)):
        for antialias in (False, True):
            net = ResnetGenerator(3, 3, 2, "instance", 2, False, antialias=antialias, antialias_up=antialias)
            assert (_runs(net, side) is not None) == works
    with pytest.raises(ConfigError, match=r"key 'crop_size': value 4 is too small for netG 'resnet_6blocks'"):
        TrialConfig(netG="resnet_6blocks", netD="pixel", crop_size=4, load_size=4)


@pytest.mark.parametrize("values, message", [
    (dict(netD="n_layers", n_layers_D=6, crop_size=32),
     "key 'n_layers_D': value 6 with netD 'n_layers' needs crop_size >= 192, got crop_size 32"),
    (dict(crop_size=16), "key 'netD': value 'basic' (a 3-layer PatchGAN) needs crop_size >= 24, got crop_size 16"),
    (dict(model="cut", netD="n_layers", n_layers_D=4, crop_size=32), "needs crop_size >= 48"),
])
def test_discriminator_too_deep_for_the_crop_is_refused_before_work(tmp_path, capsys, values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrialConfig(load_size=values["crop_size"], **values)
    params = tmp_path / "t.yaml"
    params.write_text(f"load_size: {values['crop_size']}\nn_epochs: 1\n")
    code = main(["train", "--params", str(params), "--out", str(tmp_path / "trial"),
                 "--set", *(f"{k}={v}" for k, v in values.items())])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "trial").exists()  # refused before anything was written
    assert TrialConfig(netD="n_layers", n_layers_D=3, crop_size=32, load_size=32).n_layers_D == 3  # the advice works


@pytest.mark.parametrize("changes", [dict(), dict(model="cut"), dict(model="fastcut", netG="resnet_6blocks"),
                                     dict(model="cut", no_antialias=True), dict(model="cut", no_antialias_up=True)])
def test_cut_nce_layers_past_the_generator_are_refused(changes):
    cfg = TrialConfig(ngf=2, **changes)
    assert resnet_layers(cfg) == len(build_generator(cfg).model)  # the rule against the network
    if cfg.model != "cyclegan":
        last = resnet_layers(cfg) - 1
        assert TrialConfig(ngf=2, nce_layers=f"0,{last}", **changes).nce_layer_ids == [0, last]
        with pytest.raises(ConfigError, match=rf"key 'nce_layers': value '0,{last + 1}' reads layer {last + 1}, past"):
            TrialConfig(ngf=2, nce_layers=f"0,{last + 1}", **changes)


def test_yaml_merge_keys_are_read_and_repeated_keys_still_refused(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("<<: {n_epochs: 2, lr: 0.001}\nlr: 0.002\nn_epochs_decay: 0\n")
    cfg = TrialConfig.from_yaml(path)
    assert (cfg.n_epochs, cfg.lr, cfg.n_epochs_decay) == (2, 0.002, 0)  # a key beside the merge wins
    path.write_text("defaults: &b {n_epochs: 2}\n<<: *b\n")
    with pytest.raises(ConfigError, match=r"t\.yaml: unknown key\(s\) 'defaults'"):
        TrialConfig.from_yaml(path)
    path.write_text("<<: {n_epochs: 2}\nlr: 0.1\nlr: 0.2\n")
    with pytest.raises(ConfigError, match=r"t\.yaml: not valid YAML .*key 'lr' given twice \(line 3\)"):
        TrialConfig.from_yaml(path)
