"""`maskcycle survey serve|invite|status|export`: a real server in a subprocess (free port, always
killed), answers stored in SQLite, everything a participant or a stranger might send."""

from __future__ import annotations

import contextlib
import csv
import http.client
import json
import os
import random
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from maskcycle.cli import main
from maskcycle.survey import analysis
from maskcycle.survey import db as survey_db
from maskcycle.survey.load import Client, page_data, run_load
from test_survey_page import build

TOKEN = "status-token-0123456789"


@pytest.fixture
def quiz(tmp_path) -> Path:
    return build(tmp_path).parent


@contextlib.contextmanager
def serving(survey: Path, db: Path, *extra: str, log: Path | None = None):
    """The server as a participant meets it: a subprocess on a free port; killed whatever happens."""
    log = log or db.with_suffix(".log")
    with open(log, "a") as err:
        proc = subprocess.Popen([sys.executable, "-m", "maskcycle", "survey", "serve", "--survey", str(survey),
                                 "--db", str(db), "--port", "0", *extra], stdout=subprocess.PIPE, stderr=err,
                                text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else ""
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, f"server did not start: {line!r} {log.read_text()[-2000:]}"
        yield f"http://127.0.0.1:{m.group(1)}/", proc
    finally:
        proc.kill()
        proc.wait(30)
        proc.stdout.close()


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as written (no client-side normalisation of ../)."""
    port = int(url.rsplit(":", 1)[1].strip("/"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def answer_all(c: Client, data: dict, pid: str, start: int = 0, responses=("real", "fake")) -> list[tuple]:
    """Answer every image in the page's order (practice, main, attention); returns (trial, id, response)."""
    order = data["practice"] + data["main"] + data["attention"]
    done = []
    for t in range(start, len(order)):
        resp = responses[t % len(responses)]
        status, reply = c.post("/api/answer", {"pid": pid, "survey_id": data["survey_id"], "trial_index": t,
                                               "image_id": order[t]["id"], "response": resp, "rt_ms": 1000 + t})
        assert status == 200, reply
        done.append((t, order[t]["id"], resp))
    return done


def test_routes_serve_the_quiz_and_never_the_key(quiz, tmp_path):
    with serving(quiz, tmp_path / "a.sqlite") as (url, _):
        status, html = raw_get(url, "/")
        assert status == 200
        data = page_data(html.decode())
        ids = [i["id"] for r in ("practice", "main", "attention") for i in data[r]]
        assert data["server"]["invited_only"] is False and all(i["src"] == f"img/{i['id']}.png"
                                                               for r in ("main", "attention") for i in data[r])
        for iid in ids:
            status, png = raw_get(url, f"/img/{iid}.png")
            assert status == 200 and png.startswith(b"\x89PNG")
        key_text = (quiz / "key.csv").read_bytes()
        for path in ("/key.csv", "/survey.json", "/survey.html", "/img/../key.csv", "/../key.csv", "/%2e%2e/key.csv",
                     "/img/..%2fkey.csv", "/img/%2e%2e%2fkey.csv", "/img/key.csv", "/img/x.png", "/static/key.csv",
                     "/img/" + ids[0], "//etc/passwd", "/img/..%2f..%2f..%2fetc%2fpasswd", "/status"):
            status, body = raw_get(url, path)
            assert status in (400, 404), (path, status)
            assert b"image_id,role" not in body and key_text[:40] not in body and b"root:" not in body
        # the key's words are not in anything served
        for word in ("truth", "source_file", "fakes_AB", "testA"):
            assert word.encode() not in html
        status, body = raw_get(url, "/img/../img/" + ids[0] + ".png")
        assert status in (200, 404)  # a client may normalise; the server answers an image or nothing


def test_answers_are_validated_stored_once_and_exported_for_analyse(quiz, tmp_path, capsys):
    db = tmp_path / "a.sqlite"
    with serving(quiz, db) as (url, _):
        c = Client(url)
        data = page_data(c.request("GET", "/")[1].decode())
        n = sum(len(data[r]) for r in ("practice", "main", "attention"))
        status, st = c.post("/api/start", {"pid": None, "consent": False, "answers": {}})
        assert status == 200 and st["answered"] == 0 and re.fullmatch(r"[A-Za-z0-9_-]{22}", st["pid"])
        pid, first = st["pid"], data["practice"][0]["id"]
        good = {"pid": pid, "survey_id": data["survey_id"], "trial_index": 0, "image_id": first, "response": "fake",
                "rt_ms": 900}
        bad = [({**good, "image_id": "inothere"}, 400), ({**good, "response": "maybe"}, 400),
               ({**good, "rt_ms": -1}, 400), ({**good, "rt_ms": 1e12}, 400),
               ({**good, "rt_ms": 10 ** 400}, 400), ({**good, "rt_ms": "1"}, 400), ({**good, "image_id": ["x"]}, 400),
               ({**good, "x" * 5000: 1}, 400), ({**good, "trial_index": True}, 400),
               ({**good, "trial_index": 10_000}, 400), ({**good, "trial_index": "0"}, 400),
               ({**good, "extra": 1}, 400), ({k: v for k, v in good.items() if k != "rt_ms"}, 400),
               ({**good, "pid": "short"}, 400), ({**good, "pid": "x" * 22}, 404),
               ({**good, "pid": "'; DROP TABLE answers; --xxxxxxx"}, 400),
               ({**good, "survey_id": "s00000000"}, 409), ({**good, "trial_index": 1}, 409), ([good], 400)]
        for body, code in bad:
            status, reply = c.post("/api/answer", body)
            assert status == code and reply["error"], (body, status, reply)
        status, reply = c.request("POST", "/api/answer", b"{not json", {"Content-Type": "application/json"})
        assert status == 400
        status, reply = c.request("POST", "/api/answer", json.dumps(good).encode(), {"Content-Type": "text/plain"})
        assert status == 415
        status, reply = c.request("POST", "/api/answer", b"{" + b" " * 100_000 + b"}",
                                  {"Content-Type": "application/json"})
        assert status == 413
        rnd = random.Random(0)  # random shapes of every field: refused with a 4xx, never a server error
        values = [None, True, 0, -1, 2 ** 70, 1.5, float("inf"), "", "real", pid, first, "x" * 300, [], [1], {},
                  {"a": [None]}, data["survey_id"]]
        for _ in range(150):
            path = rnd.choice(["/api/answer", "/api/start", "/api/state"])
            keys = rnd.sample(sorted(good) + ["consent", "answers"], rnd.randint(0, 5))
            status, reply = c.post(path, {k: rnd.choice(values) for k in keys})
            assert 400 <= status < 500 and reply["error"], (path, status, reply)
        c.close()
        c = Client(url)
        assert c.post("/api/answer", {**good, "rt_ms": float("nan")})[0] == 400  # json.dumps writes NaN
        assert c.post("/api/answer", good) == (200, {"stored": True, "repeat": False, "finished": False})
        assert c.post("/api/answer", good)[1]["repeat"] is True  # a retry after a lost reply: one row
        assert c.post("/api/answer", {**good, "response": "real"})[0] == 409  # no second answer to an image
        done = [(0, first, "fake")] + answer_all(c, data, pid, start=1)
        assert c.post("/api/state", {"pid": pid}) == (200, {"state": "finished", "answered": n})
        assert c.post("/api/start", {"pid": pid, "consent": False, "answers": {}})[0] == 409  # no second go
        other = c.post("/api/start", {"pid": None, "consent": False, "answers": {}})[1]["pid"]
        assert c.post("/api/answer", {**good, "pid": other, "trial_index": 0})[0] == 200  # own answers only
        c.close()
    rows = sqlite3.connect(db).execute("SELECT trial_index, image_id, response FROM answers WHERE pid = ? "
                                       "ORDER BY trial_index", (pid,)).fetchall()
    assert rows == done  # nothing invalid stored, every valid answer once
    assert main(["survey", "export", "--db", str(db), "--out", str(tmp_path / "exported"), "--survey", str(quiz)]) == 0
    files = sorted((tmp_path / "exported").glob("*.csv"))
    assert len(files) == 2 and all(f.name.startswith(page_data((quiz / "survey.html").read_text())["survey_id"])
                                   for f in files)
    resp = analysis.read_responses(tmp_path / "exported", quiz)
    s = resp.sessions.set_index("participant_id")
    assert s.loc[pid, "kept"] and not s.loc[other, "complete"]
    assert len(resp.answers) == len(data["main"])
    with open(next(f for f in files if pid in f.name), newline="") as fh:
        got = [(int(r["trial_index"]), r["image_id"], r["response"]) for r in csv.DictReader(fh)]
    assert got == done
    assert main(["survey", "status", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "2 participants (0 invited), 2 started, 1 finished" in out


def test_invitations_resume_consent_questions_and_status_token(quiz, tmp_path, capsys):
    (quiz / "consent.txt").write_text("We study fake faces.\n\nYou may stop at any time.\n")
    (quiz / "questions.json").write_text(json.dumps([{"id": "age", "text": "Your age", "choices": ["<30", "30+"]}]))
    db, links = tmp_path / "a.sqlite", tmp_path / "links.csv"
    assert main(["survey", "invite", "--survey", str(quiz), "--db", str(db), "--n", "3", "--url",
                 "https://quiz.example.org/", "--out", str(links)]) == 0
    invites = list(csv.DictReader(links.open()))
    assert len(invites) == 3 and len({r["participant_id"] for r in invites}) == 3
    assert all(r["link"] == f"https://quiz.example.org/?pid={r['participant_id']}" for r in invites)
    assert main(["survey", "invite", "--survey", str(quiz), "--db", str(db), "--n", "3", "--out", str(links)]) == 2
    assert "already exists" in capsys.readouterr().err
    a, b = invites[0]["participant_id"], invites[1]["participant_id"]
    with serving(quiz, db, "--status-token", TOKEN) as (url, _):
        c = Client(url)
        data = page_data(c.request("GET", "/")[1].decode())
        assert data["server"]["invited_only"] and data["server"]["consent"] == ["We study fake faces.",
                                                                                  "You may stop at any time."]
        assert c.post("/api/start", {"pid": None, "consent": True, "answers": {"age": "<30"}})[0] == 403
        assert c.post("/api/state", {"pid": a}) == (200, {"state": "invited", "answered": 0})
        assert c.post("/api/start", {"pid": a, "consent": False, "answers": {"age": "<30"}})[0] == 400
        assert c.post("/api/start", {"pid": a, "consent": True, "answers": {}})[0] == 400
        for answers in ({"age": "99"}, {"age": ["<30"]}, {"age": {"x": 1}}, {"age": None}, {"age": "<30", "b": "1"}):
            assert c.post("/api/start", {"pid": a, "consent": True, "answers": answers})[0] == 400
        status, st = c.post("/api/start", {"pid": a, "consent": True, "answers": {"age": "30+"}})
        assert status == 200 and st["pid"] == a
        order = data["practice"] + data["main"] + data["attention"]
        for t in range(3):
            c.post("/api/answer", {"pid": a, "survey_id": data["survey_id"], "trial_index": t,
                                   "image_id": order[t]["id"], "response": "real", "rt_ms": 500})
        c.close()
        c = Client(url)  # the tab closed and opened again: same session, three answers given
        status, again = c.post("/api/start", {"pid": a, "consent": False, "answers": {}})  # asked once only
        assert again == {**st, "answered": 3}
        # b cannot touch a's answers: b's answers are b's rows, and a's image stays answered once
        c.post("/api/start", {"pid": b, "consent": True, "answers": {"age": "<30"}})
        assert c.post("/api/answer", {"pid": b, "survey_id": data["survey_id"], "trial_index": 0,
                                      "image_id": order[0]["id"], "response": "fake", "rt_ms": 1})[0] == 200
        for path in ("/status", f"/status?token={TOKEN[:-1]}x"):
            assert c.request("GET", path)[0] == 403
        status, page = c.request("GET", "/status?format=json", headers={"Authorization": f"Bearer {TOKEN}"})
        s = json.loads(page)
        assert status == 200 and (s["invited"], s["started"], s["finished"], s["answers"]) == (3, 2, 0, 4)
        assert "truth" not in page.decode() and "real" not in page.decode()
        c.close()
    rows = sqlite3.connect(db).execute("SELECT pid, response FROM answers ORDER BY pid, trial_index").fetchall()
    assert sorted(rows) == sorted([(a, "real")] * 3 + [(b, "fake")])
    assert main(["survey", "export", "--db", str(db), "--out", str(tmp_path / "x")]) == 0
    people = json.loads((tmp_path / "x" / "participants.json").read_text())["participants"]
    assert {p["participant_id"]: p["demographics"] for p in people if p["demographics"]} == {a: {"age": "30+"},
                                                                                             b: {"age": "<30"}}


def test_sigkill_during_submissions_loses_nothing_acknowledged(quiz, tmp_path):
    db = tmp_path / "a.sqlite"
    acked, lock, stop = [], threading.Lock(), threading.Event()
    with serving(quiz, db) as (url, proc):
        data = page_data(Client(url).request("GET", "/")[1].decode())
        order = data["practice"] + data["main"] + data["attention"]

        def worker(k: int) -> None:
            c = Client(url, timeout=10)
            try:
                pid = c.post("/api/start", {"pid": None, "consent": False, "answers": {}})[1]["pid"]
                for t, item in enumerate(order):
                    if stop.is_set():
                        return
                    status, _ = c.post("/api/answer", {"pid": pid, "survey_id": data["survey_id"], "trial_index": t,
                                                       "image_id": item["id"], "response": "fake", "rt_ms": t})
                    if status == 200:
                        with lock:
                            acked.append((pid, item["id"]))
            except (OSError, KeyError):
                return  # the server died under it: what it confirmed before is what counts

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(12)]
        for th in threads:
            th.start()
        deadline = time.monotonic() + 60
        while len(acked) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: requests in flight are lost, acknowledged ones not
        with lock:
            confirmed = set(acked)
        stop.set()
        for th in threads:
            th.join(30)
    assert len(confirmed) >= 40
    with serving(quiz, db) as (url, proc):  # starts again on the same file, nothing recreated
        status, _ = Client(url).request("GET", "/")
        assert status == 200
        proc.send_signal(signal.SIGTERM)  # a service manager's stop: a clean end
        assert proc.wait(30) == 0
    conn = sqlite3.connect(db)
    stored = set(conn.execute("SELECT pid, image_id FROM answers"))
    assert confirmed <= stored
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_bad_databases_ports_and_folders_are_one_line_errors(quiz, tmp_path, capsys):
    def run(*argv) -> tuple[int, str]:
        code = main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, err
        return code, err

    serve = ["survey", "serve", "--survey", quiz, "--port", "0", "--db"]
    missing = tmp_path / "none.sqlite"
    for cmd in (["survey", "export", "--out", tmp_path / "o", "--db"], ["survey", "status", "--db"]):
        assert run(*cmd, missing) == (2, f"maskcycle {' '.join(cmd[:2])}: error: {missing}: no such survey database\n")
    assert not missing.exists()
    for name, content in [("empty.sqlite", b""), ("text.sqlite", b"participant_id,response\n"),
                          ("torn.sqlite", None)]:
        path = tmp_path / name
        if content is None:  # a real database cut short, as a failed copy leaves it
            good = tmp_path / "good.sqlite"
            survey_db.open_db(good, "s12345678", create=True).close()
            content = good.read_bytes()[:200] + b"\0" * 5000
        path.write_bytes(content)
        for cmd in (serve, ["survey", "export", "--out", tmp_path / "o", "--db"], ["survey", "status", "--db"]):
            code, err = run(*cmd, path)
            assert code == 2 and str(path) in err, err
        assert path.read_bytes() == content  # never recreated, never touched
    other = tmp_path / "other.sqlite"
    survey_db.open_db(other, "s00000000", create=True).close()
    code, err = run(*serve, other)
    assert code == 2 and "of another survey than" in err and str(other) in err
    code, err = run("survey", "export", "--db", other, "--out", tmp_path / "o", "--survey", quiz)
    assert code == 2 and "s00000000" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, err = run("survey", "serve", "--survey", quiz, "--db", tmp_path / "p.sqlite", "--port", port)
        assert code == 2 and f"127.0.0.1:{port}: port already in use" in err
        assert not (tmp_path / "p.sqlite").exists()  # no database made for a server that never ran
    for missing_file in ("survey.html", "key.csv"):
        broken = tmp_path / f"no_{missing_file}"
        broken.mkdir()
        for f in ("survey.html", "key.csv"):
            if f != missing_file:
                (broken / f).write_bytes((quiz / f).read_bytes())
        code, err = run("survey", "serve", "--survey", broken, "--db", tmp_path / "q.sqlite")
        assert code == 2 and str(broken / missing_file) in err
    (broken / "survey.html").write_text("<html>a page someone else wrote</html>")
    (broken / "key.csv").write_bytes((quiz / "key.csv").read_bytes())
    code, err = run("survey", "serve", "--survey", broken, "--db", tmp_path / "q.sqlite")
    assert code == 2 and "survey.html: not a quiz page written by maskcycle survey build" in err
    (broken / "survey.html").write_bytes((quiz / "survey.html").read_bytes())
    key = (quiz / "key.csv").read_text()
    (broken / "key.csv").write_text(key[:-3] + ("0" if key[-3] != "0" else "1") + key[-2:])  # another image hash
    code, err = run("survey", "serve", "--survey", broken, "--db", tmp_path / "q.sqlite")
    assert code == 2 and "is the key of survey" in err
    (quiz / "questions.json").write_text('[{"id": "Age!", "text": "x", "choices": ["a", "b"]}]')
    code, err = run(*serve, tmp_path / "r.sqlite")
    assert code == 2 and "questions.json: question 1: id must be" in err


@pytest.mark.slow
def test_load_100_simultaneous_participants(quiz, tmp_path):
    """Every acknowledged answer stored once under 100 participants at once (bounded; no timing asserted)."""
    db = tmp_path / "a.sqlite"
    with serving(quiz, db) as (url, _):
        result = run_load(url, participants=100, timeout=240)
    n_items = len(analysis.read_key(quiz))
    assert result["n_errors"] == 0, result["errors"]
    assert result["answers_acknowledged"] == 100 * n_items
    rows = sqlite3.connect(db).execute("SELECT pid, image_id, response FROM answers").fetchall()
    assert len(rows) == len(set(rows)) == 100 * n_items and set(result["acked"]) == set(rows)
    with pytest.raises(ValueError, match="this machine only"):
        Client("http://192.0.2.1:8000/")


@pytest.mark.browser
@pytest.mark.slow
def test_participant_in_headless_chromium_against_the_server(quiz, tmp_path):
    from test_survey_page import find_chromium

    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium installed (run_tests.sh installs Debian's chromium when run as root with apt-get)")
    from playwright import sync_api
    from playwright.sync_api import expect  # in the utility world: the page's CSP (no eval) stays on

    (quiz / "consent.txt").write_text("We study fake faces.\n\nYou may stop at any time.\n")
    (quiz / "questions.json").write_text(json.dumps([{"id": "age", "text": "Your age", "choices": ["<30", "30+"]}]))
    db, links = tmp_path / "a.sqlite", tmp_path / "links.csv"
    assert main(["survey", "invite", "--survey", str(quiz), "--db", str(db), "--n", "2", "--out", str(links)]) == 0
    pid = next(csv.DictReader(links.open()))["participant_id"]
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
    clicks = []
    with serving(quiz, db) as (url, _), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=args, headless=True)
        try:
            ctx = browser.new_context()
            page = ctx.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)  # no personal link: an invited-only survey does not start
            expect(page.locator("#message")).not_to_be_empty()
            assert page.is_disabled("#start")
            page.goto(f"{url}?pid={pid}")
            assert not page.is_visible("#participant-id") and page.is_visible("#consent")
            page.click("#start")  # consent not given: nothing starts
            assert "agree" in page.text_content("#message") and not page.is_visible("#trial")
            page.check("#consent-ok")
            page.select_option("select[data-question=age]", "30+")
            page.click("#start")
            n_total = sum(len(page_data((quiz / "survey.html").read_text())[r]) for r in ("practice", "main",
                                                                                          "attention"))

            def answer(t: int) -> None:
                page.wait_for_selector("#btn-real:not([disabled])", timeout=20_000)
                progress = page.text_content("#progress")
                iid = page.get_attribute("#stimulus", "src").removeprefix("img/").removesuffix(".png")
                resp = "fake" if t % 3 else "real"
                if t < 2:
                    page.click(f"#btn-{resp}")
                    expect(page.locator("#feedback")).not_to_be_empty()
                else:
                    page.keyboard.press(resp[0].upper() if t % 2 else resp[0])
                clicks.append((t, iid, resp))
                if t < n_total - 1:
                    expect(page.locator("#progress")).not_to_have_text(progress, timeout=20_000)

            for t in range(5):
                answer(t)
            page.close()  # the participant closes the tab ...
            page = ctx.new_page()  # ... and opens the link again
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}?pid={pid}")
            expect(page.locator("#start")).to_have_text("Continue")
            page.click("#start")
            for t in range(5, n_total):
                answer(t)
            page.wait_for_selector("#saved-note", state="visible", timeout=20_000)
            assert not page.is_visible("#download")
            page.goto(f"{url}?pid={pid}")  # finished: cannot start again
            page.wait_for_selector("#finished", state="visible", timeout=20_000)
            assert not errors, errors
        finally:
            browser.close()
    rows = sqlite3.connect(db).execute("SELECT trial_index, image_id, response FROM answers WHERE pid = ? "
                                       "ORDER BY trial_index", (pid,)).fetchall()
    assert rows == clicks and len(rows) == n_total
    (demo,) = sqlite3.connect(db).execute("SELECT demographics FROM participants WHERE pid = ?", (pid,)).fetchone()
    assert json.loads(demo) == {"age": "30+"}
    main(["survey", "export", "--db", str(db), "--out", str(tmp_path / "exported")])
    assert analysis.read_responses(tmp_path / "exported", quiz).sessions["kept"].tolist() == [True]
