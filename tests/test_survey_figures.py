"""The survey's figures (notebook 04 draws them): one Figure per table of the analysis, labelled
SIMULATED for simulated answers, saved when asked."""

from __future__ import annotations

import matplotlib.pyplot as plt

from maskcycle.survey import analysis, figures
from maskcycle.survey import simulate as survey_sim


def test_figures_of_an_analysis(tmp_path):
    from test_survey_page import build

    page = build(tmp_path, n=12, n_images=10)
    responses = tmp_path / "responses_simulated"
    survey_sim.simulate(page.parent, responses, survey_sim.SimParams(n_participants=12, seed=1))
    result = analysis.analyse(page.parent, responses, n_boot=20, seed=0)
    people, rates, images = result["participants"], result["rates"], result["images"]
    drawn = {"scores": figures.scores_per_participant(people, True, save=tmp_path / "scores.png"),
             "rates": figures.error_rates(rates, True),
             "sdt": figures.sensitivity_and_bias(people, False),
             "images": figures.image_difficulty(images, True)}
    assert (tmp_path / "scores.png").stat().st_size > 0
    titles = {k: [ax.get_title() for ax in f.axes] for k, f in drawn.items()}
    assert titles["scores"] == ["SIMULATED: scores per participant"]
    assert titles["rates"][0].startswith("SIMULATED: ") and len(drawn["rates"].axes[0].get_yticks()) == len(rates)
    assert drawn["sdt"]._suptitle.get_text() == "sensitivity and bias per participant"
    legend = [t.get_text() for t in drawn["images"].axes[0].get_legend().get_texts()]
    assert sorted(legend) == sorted(images.category.unique())
    for f in drawn.values():
        plt.close(f)
