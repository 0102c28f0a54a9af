"""The served survey's answers in SQLite: one database per survey, one row per answer.

    maskcycle survey invite --survey S --db answers.sqlite --n 100 --url https://quiz.example.org/ --out links.csv
    maskcycle survey status --db answers.sqlite
    maskcycle survey export --db answers.sqlite --out S/responses_served

The database is bound to its survey (the survey id, a hash of the key, is stored in it) and is never
created over an existing file: a missing, empty, foreign or corrupt file is an error naming it.
WAL journal with synchronous=FULL, and every answer is committed before the server acknowledges it,
so a killed server loses nothing it confirmed. `export` writes the response files that
`maskcycle survey analyse` reads (the page's CSV columns, one file per participant).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import secrets
import sqlite3
from pathlib import Path

from maskcycle.io import atomic_write_text, check_output
from maskcycle.survey.analysis import refuse_other_survey
from maskcycle.survey.folder import load_survey
from maskcycle.survey.page import INFO_NAME, KEY_NAME, PAGE_NAME
from maskcycle.survey.simulate import RESPONSE_COLUMNS

SCHEMA_VERSION = "1"
SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE participants (
  pid TEXT PRIMARY KEY,
  invited_at TEXT,        -- written by `survey invite`; NULL for a participant who came without a link
  session_start TEXT,     -- when the participant pressed Start (UTC); NULL until then
  consent_at TEXT,
  demographics TEXT,      -- JSON object: question id -> chosen answer
  finished_at TEXT);
CREATE TABLE answers (
  pid TEXT NOT NULL REFERENCES participants(pid),
  trial_index INTEGER NOT NULL,
  image_id TEXT NOT NULL,
  response TEXT NOT NULL CHECK (response IN ('real', 'fake')),
  rt_ms REAL NOT NULL,
  is_practice INTEGER NOT NULL,
  is_attention_check INTEGER NOT NULL,
  answered_at TEXT NOT NULL,
  PRIMARY KEY (pid, image_id),
  UNIQUE (pid, trial_index));
"""
SQLITE_MAGIC = b"SQLite format 3\x00"
PARTICIPANTS_NAME = "participants.json"


class Refused(ValueError):
    """A request the survey does not accept; `status` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_pid() -> str:
    """An unguessable participant id (128 random bits; URL-safe)."""
    return secrets.token_urlsafe(16)


def open_db(path: str | Path, survey_id: str | None = None, key: str = "", create: bool = False
            ) -> sqlite3.Connection:
    """The survey database at `path` (created, bound to `survey_id`, only when `create` and no file is
    there). ValueError naming the file when it is missing, empty, not SQLite, corrupt, not a survey
    database, or of another survey than `survey_id` (whose key is `key`)."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"{path}: no such survey database")
        if survey_id is None:
            raise ValueError(f"{path}: a new database needs its survey")
        if Path(f"{path}-wal").exists():  # answers may be in the log of a database that was moved away
            raise ValueError(f"{path}: missing, but {path}-wal is there; put the database back")
        conn = _connect(path, "rwc")
        with conn:
            conn.executescript(SCHEMA)
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [("survey_id", survey_id), ("schema", SCHEMA_VERSION),
                                                                ("created_at", utc_now())])
        return conn
    if not path.is_file():
        raise ValueError(f"{path}: not a file")
    with path.open("rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        what = "an empty file" if not head else "not an SQLite database"
        raise ValueError(f"{path}: {what}, not a survey database (left as it is)")
    try:
        conn = _connect(path, "rw")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(check)
        meta = dict(conn.execute("SELECT name, value FROM meta"))
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{path}: damaged SQLite database ({exc}); restore it from a backup "
                         f"(left as it is)") from None
    if "survey_id" not in meta:
        raise ValueError(f"{path}: an SQLite database, but not a maskcycle survey database")
    if survey_id is not None:
        refuse_other_survey({str(path): meta["survey_id"]}, survey_id, key)
    return conn


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    # mode=rw never creates a file; the server shares one connection between threads under a lock
    conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # a committed answer survives a kill and a power cut
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def survey_of(conn: sqlite3.Connection) -> str:
    return conn.execute("SELECT value FROM meta WHERE name = 'survey_id'").fetchone()[0]


def invite(conn: sqlite3.Connection, n: int) -> list[str]:
    """n new participants with unguessable ids, recorded as invited."""
    pids, now = [new_pid() for _ in range(n)], utc_now()
    with conn:
        conn.executemany("INSERT INTO participants (pid, invited_at) VALUES (?, ?)", [(p, now) for p in pids])
    return pids


def participant(conn: sqlite3.Connection, pid: str) -> dict | None:
    row = conn.execute("SELECT pid, invited_at, session_start, finished_at, "
                       "(SELECT COUNT(*) FROM answers a WHERE a.pid = p.pid) FROM participants p WHERE pid = ?",
                       (pid,)).fetchone()
    if row is None:
        return None
    keys = ("pid", "invited_at", "session_start", "finished_at", "answered")
    return dict(zip(keys, row))


def state(p: dict) -> str:
    return "finished" if p["finished_at"] else "started" if p["session_start"] else "invited"


def start(conn: sqlite3.Connection, pid: str | None, consent: bool, demographics: dict, open_enrolment: bool
          ) -> dict:
    """Start (or resume) a participant; a new id is made only for a participant without one, and only
    when the survey admits participants without an invitation."""
    if pid is None:
        if not open_enrolment:
            raise Refused(403, "this survey takes invited participants only: open the personal link you were sent")
        pid = new_pid()
        with conn:
            conn.execute("INSERT INTO participants (pid) VALUES (?)", (pid,))
    p = participant(conn, pid)
    if p is None:
        raise Refused(404, "unknown participant id: open the personal link you were sent")
    if p["finished_at"]:
        raise Refused(409, "this participant has already completed the survey")
    if not p["session_start"]:
        now = utc_now()
        with conn:
            conn.execute("UPDATE participants SET session_start = ?, consent_at = ?, demographics = ? WHERE pid = ?",
                         (now, now if consent else None, json.dumps(demographics, sort_keys=True), pid))
        p = participant(conn, pid)
    return {"pid": pid, "session_start": p["session_start"], "answered": p["answered"], "finished": False}


def record_answer(conn: sqlite3.Connection, pid: str, item: dict, trial_index: int, response: str, rt_ms: float,
                  n_items: int) -> dict:
    """Store one answer (committed before returning). The same answer sent again (a retry after a
    lost reply) is acknowledged without a second row; another answer to an answered image, an answer
    out of turn, or an answer after the end is refused."""
    p = participant(conn, pid)
    if p is None:
        raise Refused(404, "unknown participant id")
    if not p["session_start"]:
        raise Refused(409, "this participant has not started the survey")
    old = conn.execute("SELECT trial_index, response FROM answers WHERE pid = ? AND image_id = ?",
                       (pid, item["id"])).fetchone()
    if old is not None:
        if tuple(old) == (trial_index, response):
            return {"stored": True, "repeat": True, "finished": bool(p["finished_at"])}
        raise Refused(409, f"image {item['id']} was already answered")
    if p["finished_at"]:
        raise Refused(409, "this participant has already completed the survey")
    if trial_index != p["answered"]:
        raise Refused(409, f"answer out of turn: trial_index {trial_index}, expected {p['answered']}")
    now = utc_now()
    finished = p["answered"] + 1 >= n_items
    with conn:
        conn.execute("INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (pid, trial_index, item["id"], response, rt_ms, int(item["role"] == "practice"),
                      int(item["role"] == "attention"), now))
        if finished:
            conn.execute("UPDATE participants SET finished_at = ? WHERE pid = ?", (now, pid))
    return {"stored": True, "repeat": False, "finished": finished}


def status(conn: sqlite3.Connection) -> dict:
    """Progress: participants invited / started / finished, answers in all and per image."""
    q = conn.execute("SELECT COUNT(*), COUNT(invited_at), COUNT(session_start), COUNT(finished_at) "
                     "FROM participants").fetchone()
    per_image = dict(conn.execute("SELECT image_id, COUNT(*) FROM answers GROUP BY image_id ORDER BY image_id"))
    return {"survey_id": survey_of(conn), "participants": q[0], "invited": q[1], "started": q[2], "finished": q[3],
            "answers": sum(per_image.values()), "answers_per_image": per_image}


def status_text(s: dict) -> str:
    lines = [f"survey {s['survey_id']}: {s['participants']} participants ({s['invited']} invited), "
             f"{s['started']} started, {s['finished']} finished; {s['answers']} answers"]
    lines += [f"  {iid}: {n}" for iid, n in s["answers_per_image"].items()]
    return "\n".join(lines) + "\n"


def _number(x: float) -> str:
    return str(int(x)) if math.isfinite(x) and x == int(x) else repr(x)


def export(conn: sqlite3.Connection, out_dir: str | Path) -> list[Path]:
    """One response CSV per participant with answers (the page's columns and file name), and
    participants.json (state, consent, demographics; not read by the analysis)."""
    out_dir = Path(out_dir)
    sid = survey_of(conn)
    written = []
    people = conn.execute("SELECT pid, invited_at, session_start, consent_at, demographics, finished_at "
                          "FROM participants ORDER BY session_start, pid").fetchall()
    for pid, _, start_, _, _, _ in people:
        rows = conn.execute("SELECT trial_index, image_id, response, rt_ms, is_practice, is_attention_check "
                            "FROM answers WHERE pid = ? ORDER BY trial_index", (pid,)).fetchall()
        if not rows:
            continue
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(RESPONSE_COLUMNS)
        for t, iid, resp, rt, prac, att in rows:
            w.writerow([pid, start_, t, iid, resp, _number(rt), prac, att, sid])
        stamp = "".join(c for c in start_ if c.isdigit())[:14]
        path = out_dir / f"{sid}_{pid}_{stamp}.csv"
        atomic_write_text(path, buf.getvalue())
        written.append(path)
    info = [{"participant_id": pid, "invited": bool(inv), "session_start": st, "consent_at": con,
             "demographics": json.loads(dem) if dem else None, "finished_at": fin}
            for pid, inv, st, con, dem, fin in people]
    atomic_write_text(out_dir / PARTICIPANTS_NAME, json.dumps({"survey_id": sid, "participants": info}, indent=2)
                      + "\n")
    return written


def _survey_files(folder: str | Path) -> list[Path]:
    """The files of a survey folder no output may land on (the folder itself may hold outputs)."""
    return [Path(folder) / name for name in (KEY_NAME, INFO_NAME, PAGE_NAME)]


# --- command line: invite, status, export ------------------------------------------------------
def add_invite_arguments(p) -> None:
    """`maskcycle survey invite`."""
    p.add_argument("--survey", required=True, help="the survey folder (survey.html, key.csv)")
    p.add_argument("--db", required=True, help="the survey's SQLite database (created when missing)")
    p.add_argument("--n", type=int, required=True, help="invitations to add")
    p.add_argument("--url", default="http://127.0.0.1:8000/", help="the address participants open")
    p.add_argument("--out", required=True, help="new CSV of participant_id,link (never overwritten)")


def run_invite(args) -> int:
    if not 1 <= args.n <= 100_000:
        raise ValueError(f"--n must be between 1 and 100000, got {args.n}")
    out = Path(args.out)
    check_output(out, [("--survey", _survey_files(args.survey)), ("--db", args.db)], kind="file", suffix=".csv")
    if out.exists():
        raise ValueError(f"{out}: already exists (it may hold invitations already sent); choose a new file")
    survey = load_survey(args.survey)
    conn = open_db(args.db, survey["survey_id"], survey["key_path"], create=True)
    pids = invite(conn, args.n)
    sep = "&" if "?" in args.url else "?"
    atomic_write_text(out, "participant_id,link\n" + "".join(f"{p},{args.url}{sep}pid={p}\n" for p in pids))
    print(f"added {len(pids)} invitations to {args.db}; links in {out} (send each person their own)")
    return 0


def add_status_arguments(p) -> None:
    """`maskcycle survey status`."""
    p.add_argument("--db", required=True, help="the survey's SQLite database")
    p.add_argument("--json", action="store_true", help="print JSON")


def run_status(args) -> int:
    s = status(open_db(args.db))
    print(json.dumps(s, indent=2) if args.json else status_text(s), end="\n" if args.json else "")
    return 0


def add_export_arguments(p) -> None:
    """`maskcycle survey export`."""
    p.add_argument("--db", required=True, help="the survey's SQLite database")
    p.add_argument("--out", required=True, help="folder for the response CSVs (what survey analyse reads)")
    p.add_argument("--survey", help="check that the database belongs to this survey folder")


def run_export(args) -> int:
    check_output(args.out, [("--db", args.db), ("--survey", _survey_files(args.survey) if args.survey else None)])
    expected, key = None, ""
    if args.survey:
        survey = load_survey(args.survey)
        expected, key = survey["survey_id"], survey["key_path"]
    conn = open_db(args.db, expected, key)
    files = export(conn, args.out)
    print(f"wrote {len(files)} response files and {PARTICIPANTS_NAME} to {args.out} "
          f"(analyse: maskcycle survey analyse --survey S --responses {args.out})")
    return 0
