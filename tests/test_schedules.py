import pytest
import torch

from maskcycle.config import TrialConfig
from maskcycle.models.optim import build_optimizer, build_scheduler, step_scheduler


def _lrs(cfg: TrialConfig, epochs: int, metric=None) -> list[float]:
    """The lr each 1-based epoch runs at, stepping as the trainer does."""
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg)
    sched = build_scheduler(opt, cfg)
    out = []
    for _ in range(epochs):
        if cfg.lr_step_at == "start":
            step_scheduler(sched, cfg, metric)
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if cfg.lr_step_at == "end":
            step_scheduler(sched, cfg, metric)
    return out


def test_linear_rule_matches_the_studys_reference_at_every_epoch():
    cfg = TrialConfig()
    got = _lrs(cfg, 200)
    for e, lr in enumerate(got, start=1):
        assert lr == pytest.approx(2e-4 * (1 - max(0, e + 1 - 100) / 101), abs=1e-15)
    assert got[98] == pytest.approx(2e-4) and got[-1] == 0.0  # constant, then linear to 0 at the last epoch


def test_linear_rule_upstream_steps_at_end():
    got = _lrs(TrialConfig(lr_step_at="end"), 200)
    for e, lr in enumerate(got, start=1):
        assert lr == pytest.approx(2e-4 * (1 - max(0, e - 100) / 101), abs=1e-15)
    assert got[99] == pytest.approx(2e-4) and got[-1] == pytest.approx(2e-4 / 101)


def test_step_policy_drops_tenfold_every_lr_decay_iters():
    got = _lrs(TrialConfig(lr_policy="step", lr_step_at="end"), 120)
    assert got[0] == pytest.approx(2e-4) and got[49] == pytest.approx(2e-4)
    assert got[50] == pytest.approx(2e-5) and got[100] == pytest.approx(2e-6)


def test_plateau_reference_drops_every_six_epochs():
    # The reference feeds a metric that never changes (0): no improvement after the first step.
    got = _lrs(TrialConfig(lr_policy="plateau", lr_step_at="end"), 20)
    drops = [e for e in range(1, 20) if got[e] < got[e - 1] - 1e-15]
    assert drops == [7, 13, 19]
    assert got[7] == pytest.approx(2e-4 * 0.2)


def test_plateau_with_a_real_metric_holds_while_it_improves():
    cfg = TrialConfig(lr_policy="plateau", plateau_metric="loss_G", lr_step_at="end")
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg)
    sched = build_scheduler(opt, cfg)
    for loss in [10.0 * 0.9**k for k in range(20)]:
        step_scheduler(sched, cfg, loss)
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-4)


def test_cosine_falls_to_zero_at_n_epochs_and_rises_again():
    got = _lrs(TrialConfig(lr_policy="cosine", lr_step_at="end"), 200)
    assert got[0] == pytest.approx(2e-4)
    assert got[100] == pytest.approx(0.0, abs=1e-12)  # counter 100 = T_max
    assert got[150] == pytest.approx(1e-4, rel=1e-6) and got[199] > got[150]


@pytest.mark.parametrize("name, cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                       ("rmsprop", torch.optim.RMSprop), ("sgd", torch.optim.SGD)])
def test_optimizers(name, cls):
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], TrialConfig(optimizer=name, momentum=0.9))
    assert isinstance(opt, cls) and opt.param_groups[0]["lr"] == 2e-4
