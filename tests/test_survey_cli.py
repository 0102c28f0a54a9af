"""`maskcycle survey build|simulate|analyse` through the CLI's main, on a tiny sweep layout."""

from __future__ import annotations

import json

from maskcycle.cli import main
from test_survey_page import make_folders


def test_survey_cli_build_simulate_analyse(tmp_path, capsys):
    src = make_folders(tmp_path / "src", n=12)
    sweep, curated = tmp_path / "sweep", tmp_path / "curated"
    (sweep / "t1" / "eval").mkdir(parents=True)
    curated.mkdir()
    src["fakes_AB"].rename(sweep / "t1" / "eval" / "fakes_AB")
    src["fakes_BA"].rename(sweep / "t1" / "eval" / "fakes_BA")
    src["testA"].rename(curated / "testA")
    src["testB"].rename(curated / "testB")
    out = tmp_path / "survey"
    assert main(["survey", "build", "--sweep", str(sweep), "--curated", str(curated), "--out", str(out),
                 "--n", "12"]) == 0
    assert (out / "survey.html").is_file() and (out / "key.csv").is_file()
    assert json.loads((out / "survey.json").read_text())["trial"] == "t1"
    resp = out / "responses_simulated"
    assert main(["survey", "simulate", "--survey", str(out), "--out", str(resp), "--n-participants", "40"]) == 0
    assert main(["survey", "simulate", "--survey", str(out), "--out", str(resp), "--n-participants", "30"]) == 0
    assert len(list(resp.glob("simulated_*.csv"))) == 30  # the earlier run's extra files are gone
    summary = tmp_path / "a.json"
    assert main(["survey", "analyse", "--survey", str(out), "--responses", str(resp), "--out", str(summary),
                 "--n-boot", "200"]) == 0
    printed = capsys.readouterr().out
    assert "fool rate: masking fakes" in printed and "simulated parameters recovered" in printed
    assert json.loads(summary.read_text())["n_participants"] == 30
    # errors are one line naming the problem, exit status 2
    assert main(["survey", "build", "--out", str(tmp_path / "x"), "--real-a", str(curated / "testA")]) == 2
    assert main(["survey", "build", "--sweep", str(sweep), "--curated", str(curated), "--out", str(out),
                 "--n", "12", "--seed", "7"]) == 2
    assert "a different survey already lives here" in capsys.readouterr().err
