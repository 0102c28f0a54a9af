import torch

from conftest import tiny_config
from maskcycle.cli import main
from maskcycle.config import TrialConfig
from maskcycle.evaluation.translate import load_generator
from maskcycle.models.checkpoints import atomic_save, load_reference_generator
from maskcycle.training.trainer import train


def _reference_resnet9_keys() -> dict[str, tuple]:
    """Key names and shapes of the reference's resnet_9blocks G_A/G_B state dict (ngf 64, instance
    norm), written out from its module layout, independent of our network code."""
    keys = {"model.1.weight": (64, 3, 7, 7), "model.1.bias": (64,),
            "model.4.weight": (128, 64, 3, 3), "model.4.bias": (128,),
            "model.7.weight": (256, 128, 3, 3), "model.7.bias": (256,)}
    for block in range(10, 19):
        for conv in (1, 5):
            keys[f"model.{block}.conv_block.{conv}.weight"] = (256, 256, 3, 3)
            keys[f"model.{block}.conv_block.{conv}.bias"] = (256,)
    keys.update({"model.19.weight": (256, 128, 3, 3), "model.19.bias": (128,),
                 "model.22.weight": (128, 64, 3, 3), "model.22.bias": (64,),
                 "model.26.weight": (3, 64, 7, 7), "model.26.bias": (3,)})
    return keys


def test_reference_checkpoint_loads_into_our_generator(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=g) * 0.02 for k, shape in _reference_resnet9_keys().items()}
    # saved from DataParallel, with the stale InstanceNorm buffers that old checkpoints carry
    saved = {f"module.{k}": v for k, v in state.items()}
    saved["module.model.2.running_mean"] = torch.zeros(64)
    path = tmp_path / "latest_net_G_A.pth"
    atomic_save(saved, path)
    net = load_reference_generator(path, TrialConfig())
    ours = net.state_dict()
    assert set(ours) == set(state)
    assert all(torch.equal(ours[k], state[k]) for k in state)
    cfg, G = load_generator(path, "AB")  # G_A = our G_AB
    assert torch.equal(G.state_dict()["model.26.bias"], state["model.26.bias"])


def test_reference_direction_mismatch_is_an_error(tmp_path):
    import pytest

    path = tmp_path / "latest_net_G_B.pth"
    atomic_save({}, path)
    with pytest.raises(ValueError, match="G_B maps B->A"):
        load_generator(path, "AB")


def test_translate_cli_skips_and_names_a_corrupt_file(tiny_data, tmp_path, capsys):
    cfg = tiny_config(tiny_data, n_epochs=1, n_epochs_decay=0)
    trial = train(cfg, tmp_path / "trial", progress=False)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for p in sorted((tiny_data / "testA").iterdir())[:5]:
        (inputs / p.name).write_bytes(p.read_bytes())
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code = main(["translate", "--checkpoint", str(trial / "checkpoints/latest.pt"), "--direction", "AB",
                 "--input", str(inputs), "--output", str(tmp_path / "out"), "--aligned"])
    err = capsys.readouterr().err
    assert code == 1 and "broken.png" in err
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(p.name for p in inputs.iterdir() if p.name != "broken.png")
    from PIL import Image

    assert Image.open(tmp_path / "out" / written[0]).size == (40, 40)  # the input's size


def test_bad_params_file_gives_named_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: -1\n")
    assert main(["train", "--params", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "'lr'" in err
