"""Survey statistics against hand-computed values, the study's aggregate, and the reader's checks."""

from __future__ import annotations

import csv
import io
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from maskcycle.survey import analysis
from maskcycle.survey import page as survey_page
from maskcycle.survey import simulate as survey_sim
from maskcycle.survey import stats as st


def test_wilson_by_hand_and_statsmodels():
    # 881 of 2200 by the formula written out: centre (p + z^2/2n)/(1 + z^2/n), half-width
    # z/(1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2), z = 1.959964.
    lo, hi = st.wilson(881, 2200)
    assert lo == pytest.approx(0.38017, abs=1e-5) and hi == pytest.approx(0.42109, abs=1e-5)
    assert (round(100 * lo, 2), round(100 * hi, 2)) == (38.02, 42.11)
    for k, n in [(881, 2200), (0, 22), (22, 22), (7, 10), (3, 11)]:
        assert st.wilson(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-12)
    # 7 of 10: p = .7, z^2/n = .384146; centre .892073/1.384146 = .644493, half 1.415996 * .174939 = .247713
    assert st.wilson(7, 10) == pytest.approx((0.644493 - 0.247713, 0.644493 + 0.247713), abs=1e-5)


def test_clopper_pearson_by_tables():
    assert st.clopper_pearson(7, 10) == pytest.approx((0.3475, 0.9333), abs=1e-4)  # printed tables
    assert st.clopper_pearson(0, 10) == pytest.approx((0.0, 0.308497), abs=2e-6)  # 1 - 0.025^(1/10)
    assert st.clopper_pearson(10, 10)[0] == pytest.approx(0.025 ** (1 / 10), abs=1e-9)
    assert st.clopper_pearson(881, 2200) == pytest.approx(proportion_confint(881, 2200, method="beta"), abs=1e-10)


def test_binomial_exact_by_counting():
    assert st.binomial_p(7, 10) == pytest.approx(0.34375, abs=1e-12)  # 2 * 176 / 1024
    # 881 of 2200 against 50 %: 2 * P(X <= 881), summed with exact integers
    tail = Fraction(sum(math.comb(2200, k) for k in range(882)), 2 ** 2200)
    assert st.binomial_p(881, 2200) == pytest.approx(float(2 * tail), rel=1e-9)
    assert st.binomial_p(881, 2200) < 1e-19


def test_dprime_and_criterion_by_hand():
    # z(.8) = .841621, z(.2) = -.841621
    d, c = st.dprime(0.8, 0.2)
    assert d == pytest.approx(1.683242, abs=1e-6) and c == pytest.approx(0.0, abs=1e-12)
    # z(.9) = 1.281552, z(.3) = -.524401: d' = 1.805952, c = -(1.281552 - .524401)/2 = -.378575
    d, c = st.dprime(0.9, 0.3)
    assert d == pytest.approx(1.805952, abs=2e-6) and c == pytest.approx(-0.378575, abs=2e-6)
    assert st.loglinear_rates(11, 11, 0, 11) == (11.5 / 12, 0.5 / 12)
    with pytest.raises(ValueError, match="hit rate"):
        st.dprime(1.0, 0.2)


def test_cluster_bootstrap_sees_dependent_answers():
    # 20 people, 10 always wrong, 10 never: 440 answers, half wrong. Independent-answer intervals
    # are narrow; resampling people shows the real uncertainty (sd about .5/sqrt(20) = .11).
    groups = np.array([[22, 22]] * 10 + [[0, 22]] * 10)
    lo, hi, vals = st.cluster_bootstrap(groups, st.ratio_stat(0, 1), n_boot=4000, seed=1)
    w = st.wilson(220, 440)
    assert (hi - lo) > 3 * (w[1] - w[0])
    assert np.std(vals) == pytest.approx(0.5 / math.sqrt(20), rel=0.1)
    same = np.array([[11, 22]] * 5)
    assert st.cluster_bootstrap(same, st.ratio_stat(0, 1), n_boot=100)[:2] == (0.5, 0.5)


def test_gee_matches_raw_rates_and_sees_correlation():
    rng = np.random.default_rng(0)
    rows = []
    for p in range(40):
        ability = rng.normal(0, 1.5)
        for i in range(22):
            cat = "fake" if i % 2 else "real"
            rows.append({"pid": p, "cat": cat, "error": int(rng.random() < 1 / (1 + np.exp(-ability)))})
    df = pd.DataFrame(rows)
    table, rho = st.gee_rates(df, "error", "cat", "pid")
    raw = df.groupby("cat")["error"].mean()
    for _, r in table.iterrows():  # saturated, balanced: GEE means are the raw rates
        assert r["rate"] == pytest.approx(raw[r["category"]], abs=1e-6)
        assert r["lo"] < r["rate"] < r["hi"]
    assert rho > 0.2


def test_published_aggregate_and_its_inconsistency():
    a = st.published_aggregate()
    assert a["answers"] == 2200 and a["wrong"] == 881
    assert round(100 * a["error_rate"], 2) == 40.05
    assert (round(100 * a["wilson_lo"], 2), round(100 * a["wilson_hi"], 2)) == (38.02, 42.11)
    assert a["implied_mean_score"] == pytest.approx(13.19)
    assert a["wrong_implied_by_reported_mean"] == pytest.approx(876)
    assert a["wrong_implied_by_reported_rate"] == pytest.approx(881.76)
    assert not a["rate_consistent"] and not a["mean_consistent"] and not a["reported_rate_reachable"]


# ---- reading responses ---------------------------------------------------------------------------

KEY = """image_id,role,truth,domain,direction,trial,source_file,expected_response,sha256
ip,practice,fake,B,AB,t,/x/fakes_AB/p.png,,0
i1,main,real,A,,,/x/testA/a.png,,1
i2,main,fake,B,AB,t,/x/fakes_AB/b.png,,2
i3,main,fake,A,BA,t,/x/fakes_BA/c.png,,3
i4,main,real,B,,,/x/testB/d.png,,4
ic,attention,attention,,,,,real,5
"""
HEAD = "participant_id,session_start,trial_index,image_id,response,rt_ms,is_practice,is_attention_check,survey_id\n"
SID = survey_page.survey_id_of(csv.DictReader(io.StringIO(KEY)))  # what a page of this key writes


def session(pid, start, answers=("real", "fake", "real", "fake"), ids=("i1", "i2", "i3", "i4"), sid=SID):
    rows = [f"{pid},{start},0,ip,fake,900,1,0"]
    rows += [f"{pid},{start},{t + 1},{i},{a},1000,0,0" for t, (i, a) in enumerate(zip(ids, answers))]
    rows.append(f"{pid},{start},{len(ids) + 1},ic,real,800,0,1")
    return "\n".join(f"{r},{sid}" for r in rows) + "\n"


@pytest.fixture
def quiz(tmp_path):
    (tmp_path / "key.csv").write_text(KEY)
    (tmp_path / "resp").mkdir()
    return tmp_path


def test_read_responses_joins_truth_and_sets_aside_sessions(quiz):
    r = quiz / "resp"
    (r / "a.csv").write_text(HEAD + session("p1", "2026-01-01T10:00:00Z"))
    (r / "b.csv").write_text(HEAD + session("p1", "2026-01-02T10:00:00Z", answers=("fake",) * 4))  # repeat
    (r / "c.csv").write_text(HEAD + session("p2", "2026-01-01T11:00:00Z", ids=("i1", "i2")))  # incomplete
    (r / "d.csv").write_text(HEAD + session("p3", "2026-01-01T12:00:00Z", answers=("fake", "fake", "real", "real")))
    resp = analysis.read_responses(r, quiz)
    s = resp.sessions.set_index(["participant_id", "session_start"])
    assert s.loc[("p1", "2026-01-01T10:00:00Z"), "kept"]
    assert s.loc[("p1", "2026-01-02T10:00:00Z"), "why"] == "repeat session of this participant"
    assert not s.loc[("p2", "2026-01-01T11:00:00Z"), "complete"]
    assert "answered 3 of 5" in s.loc[("p2", "2026-01-01T11:00:00Z"), "why"]
    assert sorted(resp.answers["participant_id"].unique()) == ["p1", "p3"]
    scores = analysis.participant_table(resp.answers).set_index("participant_id")["score"]
    # truth R,F,F,R: p1 answers R,F,R,F (i1, i2 right), p3 F,F,R,R (i2, i4 right)
    assert scores.to_dict() == {"p1": 2, "p3": 2}
    assert resp.attention["passed"].all()


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.replace("is_attention_check,", "attention,", 1), r"line 1: header"),
    (lambda t: t.replace("i2,fake,1000,0,0", "i2,fake,1000,0"), r"line 4: expected 9 fields"),
    (lambda t: t.replace("i3,real", "i3,maybe"), r"line 5: response must be real or fake"),
    (lambda t: t.replace("i4,fake", "i9,fake"), r"line 6: image id 'i9' is not in the key"),
    (lambda t: t.replace("i1,real,1000", "i1,real,fast"), r"line 3: could not convert"),
    (lambda t: t.replace("ip,fake,900,1,0", "ip,fake,900,yes,0"), r"line 2: flag must be 0 or 1"),
    (lambda t: t.replace("ic,real,800,0,1", "ic,real,800,0,0"), r"line 7: flags disagree"),
])
def test_malformed_rows_name_file_and_line(quiz, mutate, message):
    path = quiz / "resp" / "bad.csv"
    path.write_text(mutate(HEAD + session("p1", "2026-01-01T10:00:00Z")))
    with pytest.raises(analysis.SurveyDataError, match=message) as err:
        analysis.read_responses(quiz / "resp", quiz)
    assert "bad.csv" in str(err.value)


# ---- simulator and recovery ----------------------------------------------------------------------

def test_simulator_parameters_are_recovered(tmp_path):
    from test_survey_page import build

    page = build(tmp_path, n=22, n_practice=2, n_attention=2, n_images=20)
    params = survey_sim.SimParams(n_participants=120, dprime=0.8, criterion=0.3, seed=5)
    files = survey_sim.simulate(page.parent, tmp_path / "responses_simulated", params)
    assert len(files) == 120 and all(f.name.startswith("simulated_") for f in files)
    result = analysis.analyse(page.parent, tmp_path / "responses_simulated", n_boot=1000, seed=0)
    rec = result["recovery"]
    assert rec["recovered"].all(), rec
    # and a wrong claim is not "recovered": the interval is informative
    d = rec.set_index("parameter").loc["dprime (pooled)"]
    assert not d["lo"] <= 0.0 <= d["hi"] and not d["lo"] <= 1.6 <= d["hi"]
    assert result["sdt"]["dprime_delta_lo"] < result["sdt"]["dprime"] < result["sdt"]["dprime_delta_hi"]
    assert len(result["images"]) == 22 and len(result["participants"]) == 120
    summary = analysis.summary_json(result)
    assert summary["n_participants"] == 120 and summary["attention_pass_rate"] > 0.9


# ---- which files are read: survey ids, simulated answers, copies (issue 24) ---------------------

def _two_surveys(tmp_path):
    """Two quizzes built with one seed from two trials (other fakes): same image ids, other survey ids."""
    import shutil

    from test_survey_page import make_folders

    src = make_folders(tmp_path / "src", n=8)
    rng = np.random.default_rng(9)
    shutil.copytree(tmp_path / "src", tmp_path / "src2")
    for d in ("fakes_AB", "fakes_BA"):  # the other trial's outputs
        for p in (tmp_path / "src2" / d).iterdir():
            from maskcycle.data.images import write_png

            write_png(p, rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    out = []
    for root in (tmp_path / "src", tmp_path / "src2"):
        ident = survey_page.sweep_identities(root, {"AB": [root / "fakes_AB"], "BA": [root / "fakes_BA"]})
        out.append(survey_page.build_survey(root / "testA", root / "testB", root / "fakes_AB", root / "fakes_BA",
                                            root.parent / f"quiz_{root.name}", n=8, n_practice=2, seed=1, size=16,
                                            identity=ident).parent)
    assert src and out[0] != out[1]
    return out


def test_answers_to_another_survey_are_refused_naming_the_files(tmp_path, capsys):
    from maskcycle.cli import main

    a, b = _two_surveys(tmp_path)
    key_a, key_b = analysis.read_key(a), analysis.read_key(b)
    assert list(key_a["image_id"]) == list(key_b["image_id"])  # the same seed gives the same ids ...
    sid_a, sid_b = (survey_page.survey_id_of(k.to_dict("records")) for k in (key_a, key_b))
    assert sid_a != sid_b  # ... but not the same survey
    survey_sim.simulate(a, tmp_path / "resp_a", survey_sim.SimParams(n_participants=3))
    wrong = rf"of another survey than .* \({sid_b}\): .*simulated_sim001\.csv \({sid_a}\)"
    with pytest.raises(analysis.SurveyDataError, match=wrong):
        analysis.read_responses(tmp_path / "resp_a", b)
    assert main(["survey", "analyse", "--survey", str(b), "--responses", str(tmp_path / "resp_a")]) == 2
    assert "simulated_sim003.csv" in capsys.readouterr().err
    assert len(analysis.read_responses(tmp_path / "resp_a", a).sessions) == 3  # its own key reads them


def test_files_without_survey_id_need_it_in_their_name(quiz):
    legacy = "participant_id,session_start,trial_index,image_id,response,rt_ms,is_practice,is_attention_check\n"
    body = "".join(line.rsplit(",", 1)[0] + "\n" for line in session("p1", "2026-01-01T10:00:00Z").splitlines())
    (quiz / "resp" / "old.csv").write_text(legacy + body)
    with pytest.raises(analysis.SurveyDataError, match=r"old\.csv \(no survey id\).*<survey id>_<anything>\.csv"):
        analysis.read_responses(quiz / "resp", quiz)
    (quiz / "resp" / "old.csv").rename(quiz / "resp" / f"{SID}_p1_20260101100000.csv")  # as older pages named them
    assert analysis.read_responses(quiz / "resp", quiz).sessions["kept"].tolist() == [True]


def test_simulated_answers_are_never_mixed_with_real_ones(tmp_path, capsys):
    from maskcycle.cli import main
    from test_survey_page import build

    page = build(tmp_path)
    survey = page.parent
    survey_sim.simulate(survey, survey / "responses_simulated", survey_sim.SimParams(n_participants=5))
    real = survey / "responses"
    real.mkdir()
    for k in (1, 2):
        (real / f"p{k}.csv").write_text((survey / "responses_simulated" / f"simulated_sim00{k}.csv").read_text()
                                        .replace(f"sim00{k}", f"person{k}"))
    with pytest.raises(analysis.SurveyDataError, match=r"5 simulated response files .* and 2 from participants"):
        analysis.read_responses(survey, survey)
    assert main(["survey", "analyse", "--survey", str(survey), "--responses", str(survey), "--n-boot", "20"]) == 2
    assert main(["survey", "analyse", "--survey", str(survey), "--responses", str(survey / "responses_simulated"),
                 "--n-boot", "20"]) == 0
    assert "SIMULATED answers" in capsys.readouterr().out
    assert main(["survey", "analyse", "--survey", str(survey), "--responses", str(real), "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    assert "answers from participants" in out and "SIMULATED" not in out


def test_a_file_downloaded_twice_is_counted_once_and_said(quiz, capsys):
    from maskcycle.cli import main

    r = quiz / "resp"
    text = HEAD + session("p1", "2026-01-01T10:00:00Z")
    (r / "x.csv").write_text(text)
    (r / "x (1).csv").write_text(text)
    (r / "y.csv").write_text(HEAD + session("p3", "2026-01-01T12:00:00Z", answers=("fake", "fake", "real", "real")))
    resp = analysis.read_responses(r, quiz)
    assert resp.sessions["kept"].all() and len(resp.sessions) == 2
    assert [(c.name, o.name) for c, o in resp.duplicates] == [("x (1).csv", "x.csv")]
    assert main(["survey", "analyse", "--survey", str(quiz), "--responses", str(r), "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    assert "x (1).csv: an exact copy of" in out and "counted once" in out and "sessions set aside: 0" in out
    (r / "x (2).csv").write_text(text.replace("1000,0,0", "1001,0,0", 1))  # not a copy: a second try
    s = analysis.read_responses(r, quiz).sessions
    assert "an image answered twice" in set(s["why"])


def test_survey_id_is_checked_before_rows_and_must_not_change_within_a_file(quiz):
    r = quiz / "resp"
    (r / "theirs.csv").write_text(HEAD + session("p1", "2026-01-01T10:00:00Z", ids=("j1", "j2", "j3", "j4"),
                                                 sid="s11111111"))
    with pytest.raises(analysis.SurveyDataError, match=r"another survey .*theirs\.csv \(s11111111\)"):
        analysis.read_responses(r, quiz)  # named as another survey's, not as unknown image ids
    text = HEAD + session("p1", "2026-01-01T10:00:00Z")
    (r / "theirs.csv").write_text(text.replace(f"800,0,1,{SID}", "800,0,1,s11111111"))
    with pytest.raises(analysis.SurveyDataError, match=rf"theirs\.csv: line 7: survey id 's11111111', but '{SID}'"):
        analysis.read_responses(r, quiz)
