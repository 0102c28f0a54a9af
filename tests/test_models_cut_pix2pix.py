"""CUT / FastCUT and pix2pix: network shapes and counts, PatchNCE by hand, exact resume, pairs."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import TINY_CUT, TINY_PIX2PIX, add_train_pairs, make_paired_curated, tiny_config
from maskcycle.config import ConfigError, TrialConfig
from maskcycle.data.paired import NoPairsError
from maskcycle.models import families
from maskcycle.models.checkpoints import load, load_generators
from maskcycle.models.losses import patch_nce_loss
from maskcycle.models.networks import PatchSampleMLP, build_discriminator, build_generator, count_parameters
from maskcycle.training.trainer import train


# --- networks -------------------------------------------------------------------------------
def test_cut_networks_have_the_reference_layouts_and_counts():
    cfg = TrialConfig(model="cut")
    G, D = build_generator(cfg), build_discriminator(cfg)
    # Anti-aliasing swaps stride-2 convs for stride-1 convs + a fixed blur (a buffer) and the
    # transposed convs for a fixed upsampling + a 3x3 conv of the same size: the reference's
    # resnet_9blocks / basic D counts, unchanged.
    assert count_parameters(G) == 11_378_179 and count_parameters(D) == 2_764_737
    names = [type(layer).__name__ for layer in G.model]
    assert names[:13] == ["ReflectionPad2d", "Conv2d", "InstanceNorm2d", "ReLU", "Conv2d", "InstanceNorm2d", "ReLU",
                          "Downsample", "Conv2d", "InstanceNorm2d", "ReLU", "Downsample", "ResnetBlock"]
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        feats = G.features(x, cfg.nce_layer_ids)
        assert G(x).shape == x.shape and D(x).shape == (1, 1, 30, 30)
    # layer 0 = the reflect-padded input, 4 = first conv (full size), 8 = second, 12/16 = res blocks 1/5
    assert [tuple(f.shape[1:]) for f in feats] == [(3, 262, 262), (128, 256, 256), (256, 128, 128),
                                                   (256, 64, 64), (256, 64, 64)]
    head = PatchSampleMLP(cfg.netF_nc)
    assert count_parameters(head) == 0  # nothing until the first batch's shapes are known
    head.create([f.shape[1] for f in feats])
    # per layer Linear(C, 256) + ReLU + Linear(256, 256): 256 C + 256 + 65536 + 256
    assert count_parameters(head) == sum(256 * c + 66_048 for c in (3, 128, 256, 256, 256)) == 560_384
    out, ids = head(feats, 256, generator=torch.Generator().manual_seed(0))
    assert [tuple(o.shape) for o in out] == [(256, 256)] * 5
    assert all(torch.allclose(o.norm(dim=1), torch.ones(256), atol=1e-5) for o in out)
    assert all(len(set(i.tolist())) == 256 for i in ids)


def test_pix2pix_networks_have_the_reference_counts():
    cfg = TrialConfig(model="pix2pix", netG="unet_256", norm="batch")
    G, D = build_generator(cfg), build_discriminator(cfg)
    # unet_256 with instance norm is 54,409,603 (reference-facts.md); batch norm drops the bias of
    # the 8 down convs (3,008 channels) and 7 inner up convs (2,496) and adds weight + bias to 4,928
    # norm channels: 54,409,603 - 5,504 + 9,856.
    assert count_parameters(G) == 54_409_603 - 5_504 + 9_856 == 54_413_955
    # basic D with batch norm is 2,765,633 on 3 channels; 3 more input channels add 3 x 64 x 4 x 4
    assert count_parameters(D) == 2_765_633 + 3 * 64 * 16 == 2_768_705
    G.eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 256, 256)
        assert G(x).shape == x.shape and D(torch.cat((x, x), 1)).shape == (1, 1, 30, 30)


def test_cut_mode_presets_and_checks():
    cut, fast = TrialConfig(model="cut"), TrialConfig(model="fastcut")
    assert (cut.lambda_NCE, cut.nce_idt, cut.flip_equivariance) == (1.0, True, False)
    assert (fast.lambda_NCE, fast.nce_idt, fast.flip_equivariance) == (10.0, False, True)
    assert TrialConfig.from_dict({"model": "fastcut", "nce_idt": True}).nce_idt is True
    assert TrialConfig().lambda_NCE is None and TrialConfig().directions == ("AB", "BA")
    assert TrialConfig(model="pix2pix", direction="BA").directions == ("BA",)
    with pytest.raises(ConfigError, match="nce_layers"):
        TrialConfig(model="cut", nce_layers="8,4")
    with pytest.raises(ConfigError, match="netG"):
        TrialConfig(model="cut", netG="unet_256")


# --- PatchNCE --------------------------------------------------------------------------------
def test_patchnce_of_identical_features_is_the_cross_entropy_of_the_positive():
    torch.manual_seed(0)
    B, P, C, T = 2, 3, 4, 0.07
    q = torch.nn.functional.normalize(torch.randn(B * P, C), dim=1)
    loss = patch_nce_loss(q, q.clone(), B, T)
    want = []
    for b in range(B):  # negatives: the other patches of the same image only
        for i in range(P):
            qi = q[b * P + i].tolist()
            dots = [sum(x * y for x, y in zip(qi, q[b * P + j].tolist())) for j in range(P)]
            logits = [1.0 / T] + [(-10.0 if j == i else dots[j]) / T for j in range(P)]  # q.q = 1 positive
            want.append(-logits[0] + math.log(sum(math.exp(v) for v in logits)))
    assert torch.allclose(loss, torch.tensor(want), rtol=1e-5, atol=1e-5)
    # a key far from its query costs more; keys get no gradient
    k = q.clone().requires_grad_(True)
    qq = q.clone().requires_grad_(True)
    patch_nce_loss(qq, k, B, T).sum().backward()
    assert k.grad is None and qq.grad is not None
    assert (patch_nce_loss(q, -q, B, T) > loss).all()


# --- training ---------------------------------------------------------------------------------
@pytest.fixture
def paired(tmp_path):
    return add_train_pairs(make_paired_curated(tmp_path / "data"))


def _assert_same_state(a_dir, b_dir):
    a, b = load(a_dir / "checkpoints/latest.pt"), load(b_dir / "checkpoints/latest.pt")
    assert (a["epoch"], a["batch"], a["images"]) == (b["epoch"], b["batch"], b["images"])

    def walk(x, y, where):
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y), f"{where} differs"
        elif isinstance(x, dict):
            assert x.keys() == y.keys(), where
            for key in x:
                walk(x[key], y[key], f"{where}.{key}")
        elif isinstance(x, (list, tuple)):
            assert len(x) == len(y), where
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{where}[{i}]")
        else:
            assert x == y, f"{where}: {x!r} != {y!r}"

    walk(a["model"], b["model"], "model")
    assert (a_dir / "losses.csv").read_text() == (b_dir / "losses.csv").read_text()
    return a


@pytest.mark.slow
@pytest.mark.parametrize("family", ["fastcut", "pix2pix"])
def test_resume_is_exact_for_cut_and_pix2pix(paired, tmp_path, family):
    # FastCUT: the head, its Adam and schedule, the patch and flip generators; pix2pix: dropout's
    # global RNG and batch norm. Mid-epoch checkpoints every 2 images, then a split at epoch 1.
    changes = dict(TINY_CUT, model="fastcut", direction="BA") if family == "fastcut" else TINY_PIX2PIX
    cfg = tiny_config(paired, n_epochs=1, n_epochs_decay=1, save_latest_freq=2, **changes)
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "split", stop_after_epochs=1, progress=False)
    train(cfg, tmp_path / "split", progress=False)
    state = _assert_same_state(tmp_path / "straight", tmp_path / "split")
    if family == "fastcut":
        assert state["model"]["F_in_channels"] == [3, 16, 32, 32, 32]  # ngf 8: layers 0,4,8,12,16
        assert state["model"]["opt_F"]["state"] and "mlp_0.0.weight" in state["model"]["F"]
        assert state["model"]["sched_F"]["last_epoch"] == state["model"]["sched_G"]["last_epoch"]
    _, G_AB, G_BA = load_generators(tmp_path / "split/checkpoints/latest.pt")
    assert (G_AB is None) == (cfg.direction == "BA") and (G_BA is None) == (cfg.direction == "AB")


def test_cut_head_is_built_lazily_and_joins_the_schedule(paired):
    cfg = tiny_config(paired, **TINY_CUT)
    m = families.build_model(cfg)
    assert m.opt_F is None and not list(m.F.parameters())
    m.sched_G.step()  # an epoch-start step before the first batch, as lr_step_at start does
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    losses = families.train_step(m, x, x.flip(3))
    assert set(losses) == set(families.family(cfg).loss_names(cfg)) and all(torch.isfinite(v) for v in losses.values())
    assert m.opt_F is not None and m.sched_F.last_epoch == m.sched_G.last_epoch
    assert m.opt_F.param_groups[0]["lr"] == m.opt_G.param_groups[0]["lr"]
    before = {k: v.clone() for k, v in m.F.state_dict().items()}
    families.train_step(m, x, x.flip(3))
    assert any(not torch.equal(before[k], v) for k, v in m.F.state_dict().items())  # the head learns


def test_pix2pix_refuses_unpaired_data(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, **TINY_PIX2PIX)
    with pytest.raises(NoPairsError, match=r"pairs_train\.csv.*pix2pix.*trains on pairs"):
        train(cfg, tmp_path / "t", progress=False)


def test_paired_batches_share_crop_and_flip(paired):
    from maskcycle.data.paired import PairedData

    cfg = tiny_config(paired, **TINY_PIX2PIX)
    data = PairedData(paired, cfg.replace(load_size=40, crop_size=32, netG="resnet_6blocks"))
    plan = data.plan(1)
    assert torch.equal(plan.idx_A, plan.idx_B) and torch.equal(plan.crop_A, plan.crop_B)
    a, b = data.batch(plan, 0)
    differ = (a - b).abs().amax(1)  # the pairs differ only inside the drawn box
    assert a.shape == (2, 3, 32, 32) and (differ < 1e-6).float().mean() > 0.4
