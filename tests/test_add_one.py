"""Adding one, from this file alone: a model family (registered below) run through train, resume,
sweep and evaluation; a non-learned family run through evaluation and photo translation; a metric;
a CycleGAN loss term.

The family is "identity", the do-nothing baseline: each generator is a 1x1 convolution that
starts as the identity and is trained to stay one (L1 to its input, whose gradient is 0 there).
Its fakes are its inputs, so its paired metrics must equal the do-nothing baseline's.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import make_paired_curated, tiny_config
from maskcycle.config import FamilySettings, TrialConfig
from maskcycle.models import cyclegan, families
from maskcycle.models.optim import build_optimizer, build_scheduler
from maskcycle.models.runtime import fused_default, prepare_network, to_layout

TESTS = Path(__file__).resolve().parent


@dataclasses.dataclass
class IdentityModel:
    cfg: TrialConfig
    G_AB: nn.Module
    G_BA: nn.Module
    opt_G: torch.optim.Optimizer
    sched_G: object

    def state_dict(self) -> dict:
        return {"G_AB": self.G_AB.state_dict(), "G_BA": self.G_BA.state_dict(),
                "opt_G": self.opt_G.state_dict(), "sched_G": self.sched_G.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        for name in ("G_AB", "G_BA", "opt_G", "sched_G"):
            getattr(self, name).load_state_dict(state[name])

    def rank_state(self) -> dict:
        return {}

    def load_rank_state(self, state: dict) -> None:
        pass


class Identity:
    """The family: the members models.families.Family names, nothing else."""

    SETTINGS = FamilySettings(two_way=True)
    NEEDS_PAIRS = False

    @staticmethod
    def loss_names(cfg: TrialConfig) -> tuple[str, ...]:
        return ("idt_A", "idt_B")

    @staticmethod
    def g_loss_terms(cfg: TrialConfig) -> tuple[str, ...]:
        return ("idt_A", "idt_B")

    @staticmethod
    def generator(cfg: TrialConfig) -> nn.Module:
        conv = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            conv.bias.zero_()
        return conv

    @staticmethod
    def build(cfg: TrialConfig, device="cpu", fused=None) -> IdentityModel:
        G_AB, G_BA = (prepare_network(Identity.generator(cfg), cfg, device) for _ in range(2))
        opt = build_optimizer([*G_AB.parameters(), *G_BA.parameters()], cfg, fused_default(cfg, fused))
        return IdentityModel(cfg, G_AB, G_BA, opt, build_scheduler(opt, cfg))

    @staticmethod
    def train_step(m: IdentityModel, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        real_A, real_B = to_layout(real_A, m.cfg), to_layout(real_B, m.cfg)
        m.opt_G.zero_grad(set_to_none=True)
        losses = {"idt_A": F.l1_loss(m.G_BA(real_A), real_A), "idt_B": F.l1_loss(m.G_AB(real_B), real_B)}
        sum(losses.values()).backward()
        m.opt_G.step()
        return {k: v.detach() for k, v in losses.items()}

    @staticmethod
    def schedulers(m: IdentityModel) -> list:
        return [m.sched_G]

    @staticmethod
    def networks(m: IdentityModel) -> dict[str, nn.Module]:
        return {"G_AB": m.G_AB, "G_BA": m.G_BA}

    @staticmethod
    def seed_rank_streams(m: IdentityModel, rank: int) -> None:
        pass  # no random streams


families.register("identity", Identity)  # the one line a new family adds


def test_a_family_lacking_a_member_is_refused():
    class Half:
        NEEDS_PAIRS = False

    with pytest.raises(TypeError, match="lacks SETTINGS, build, g_loss_terms, generator, loss_names"):
        families.register("half", Half)
    assert "half" not in families.FAMILIES


def brightness_gap(fakes, reals, pairs) -> dict:
    """A toy metric: how far the fakes' mean brightness is from the real target domain's."""
    return {"gap": float(abs(fakes.mean() - reals.mean())), "pairs": len(pairs)}


def test_the_toy_family_trains_resumes_and_is_evaluated_with_a_toy_metric(tmp_path, monkeypatch):
    from maskcycle import results
    from maskcycle.evaluation import evaluate, family_table, held_out, metrics
    from maskcycle.training.trainer import train

    gap = metrics.Metric("gap", lower_is_better=True, compare=True, compute=brightness_gap)
    monkeypatch.setattr(metrics, "METRICS", [*metrics.METRICS, gap])  # the one line

    curated = make_paired_curated(tmp_path)
    cfg = tiny_config(curated, model="identity", name="idt")
    assert cfg.directions == ("AB", "BA")
    whole, parts = tmp_path / "whole" / "idt", tmp_path / "parts" / "idt"
    train(cfg, whole, progress=False)
    train(cfg, parts, stop_after_epochs=1, progress=False)
    assert (parts / "run.json").read_text().count('"stopped"')
    train(cfg, parts, progress=False)  # resumes at epoch 2
    assert (whole / "losses.csv").read_text() == (parts / "losses.csv").read_text()
    assert (whole / "losses.csv").read_text().splitlines()[0] == "epoch,batch,images,lr,idt_A,idt_B"

    record = evaluate.evaluate_trial(whole, evaluate.Scorer(None, "no extractor in this test"), curated,
                                     progress=False)
    assert record["model"] == "identity" and record["directions"] == "AB,BA"
    # fakes = inputs: the do-nothing baseline's numbers, to the rounding of a uint8 round trip
    assert record["psnr_BA"] == pytest.approx(record["psnr_BA_input"], rel=1e-3)
    assert record["ssim_AB"] == pytest.approx(record["ssim_AB_input"], rel=1e-3)
    test = held_out.load_test_sets(curated, cfg.crop_size)  # fakes = inputs: the gap of test A and test B
    assert record["gap_AB"] == pytest.approx(abs(test.A.mean() - test.B.mean()), abs=0.5)
    assert record["pairs_AB"] == record["n_pairs_AB"] > 0 and record["by_epoch"][0]["gap_BA"] is not None
    table = results.summary_table(whole.parent)
    assert table.loc[0, "gap_BA"] == record["gap_BA"]
    assert gap in metrics.compared()  # comparison.csv tests it; notebook 03's family table shows it:
    assert family_table.family_table(table, "BA").loc[0, "gap"] == pytest.approx(record["gap_BA"], abs=1e-4)


@pytest.mark.slow
def test_the_toy_family_runs_through_a_sweep(tmp_path, monkeypatch):
    from maskcycle import results
    from maskcycle.training import sweep

    curated = make_paired_curated(tmp_path)
    params = tmp_path / "identity.yaml"
    settings = {k: v for k, v in tiny_config(curated).to_dict().items()
                if k in ("netG", "ngf", "ndf", "load_size", "crop_size", "batch_size", "n_samples")}
    params.write_text("".join(f"{k}: {v}\n" for k, v in {**settings, "model": "identity", "n_epochs": 1,
                                                          "n_epochs_decay": 0}.items()))
    # the sweep's notebooks run in other processes: they import this file to have the family
    monkeypatch.setenv(families.PLUGINS_ENV, "test_add_one")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    out = tmp_path / "sweep"
    records = sweep.run_sweep([params], out, [f"dataroot={curated}"], echo=lambda *a: None)
    assert [r["status"] for r in records] == ["finished"], records
    table = results.summary_table(out)
    assert table.loc[0, "model"] == "identity" and table.loc[0, "directions"] == "AB,BA"


def total_variation_AB(m, p: cyclegan.Passes) -> torch.Tensor:
    """A toy term: smoothness of the masked fakes (vertical neighbours)."""
    return (p.fake_B[..., 1:, :] - p.fake_B[..., :-1, :]).abs().mean() * 0.1


def test_a_cyclegan_loss_term_is_one_function_and_one_line(tiny_data, tmp_path, monkeypatch):
    from maskcycle.training.trainer import train

    cfg = tiny_config(tiny_data, n_epochs=1, n_epochs_decay=0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    before, _, _ = cyclegan.generator_loss(cyclegan.build(cfg), x, x.flip(3))
    monkeypatch.setitem(cyclegan.G_TERMS, "tv_AB", total_variation_AB)  # the one line
    after, parts, _ = cyclegan.generator_loss(cyclegan.build(cfg), x, x.flip(3))
    assert float(parts["tv_AB"].detach()) > 0
    assert float((after - before).detach()) == pytest.approx(float(parts["tv_AB"].detach()), rel=1e-4)

    train(cfg, tmp_path / "tv", progress=False)
    lines = (tmp_path / "tv" / "losses.csv").read_text().splitlines()
    assert lines[0].endswith(",idt_BA,tv_AB") and all(float(r.split(",")[-1]) > 0 for r in lines[1:])


class Darken:
    """A toy non-learned family, the members models.families.Baseline names: A->B darkens the lower
    half of each face crop (a crude mask), and says which pixels it changed."""

    SETTINGS = FamilySettings(trains=False, translates=("AB",))
    NEEDS_LANDMARKS = False
    ACTS_IN_REGION = True

    @staticmethod
    def problem(lm, shape) -> str | None:
        return None

    @staticmethod
    def translate_face(cfg, direction, crop, lm, segmenter, check_masked):
        half = crop.shape[0] // 2
        out, changed = crop.copy(), np.zeros(crop.shape[:2], np.float32)
        out[half:] //= 2
        changed[half:] = 1
        return out, changed, None


families.register_baseline("darken", Darken)  # the one line a new non-learned family adds


def test_a_toy_baseline_is_trialled_evaluated_and_translates(tmp_path):
    from maskcycle.config import non_learned
    from maskcycle.evaluation import evaluate
    from maskcycle.evaluation.translate import translate_crops
    from maskcycle.training.trainer import train

    assert non_learned()["darken"] == ("AB",)
    curated = make_paired_curated(tmp_path)
    cfg = tiny_config(curated, model="darken", name="dk")
    train(cfg, tmp_path / "sweep" / "dk", progress=False)  # its settings are the trial: no checkpoint
    assert not (tmp_path / "sweep" / "dk" / "checkpoints").exists()
    record = evaluate.evaluate_trial(tmp_path / "sweep" / "dk", evaluate.Scorer(None, "no extractor in this test"),
                                     curated, progress=False)
    assert record["directions"] == "AB" and record["psnr_BA"] is None
    assert 0 < record["mask_iou_AB"] < 1  # its half-face region against the true mask region
    crops = np.full((2, 32, 32, 3), 200, np.uint8)
    done = translate_crops(None, cfg, "AB", crops)
    assert done.regional and (done.images[:, 16:] == 100).all() and (done.images[:, :16] == 200).all()
    with pytest.raises(ValueError, match="cannot translate BA"):
        translate_crops(None, cfg, "BA", crops)


def test_a_baseline_lacking_a_member_or_that_trains_is_refused():
    class Partial:
        SETTINGS = FamilySettings(trains=False)

    with pytest.raises(TypeError, match="lacks ACTS_IN_REGION, NEEDS_LANDMARKS, problem, translate_face"):
        families.register_baseline("partial", Partial)
    with pytest.raises(TypeError, match="trains=False"):
        families.register_baseline("trainer", type("T", (Darken,), {"SETTINGS": FamilySettings()}))
    assert "partial" not in families.BASELINES and "trainer" not in families.BASELINES
