"""`maskcycle survey serve`: the quiz built by `survey build`, served, with every answer stored in SQLite.

    maskcycle survey serve --survey S --db answers.sqlite [--host 127.0.0.1] [--port 8000] [--status-token T]

Routes (nothing else; no file is ever read from disk per request, so no path reaches the folder):
    GET  /                 the quiz page (the installed template + the survey's data, images by URL)
    GET  /img/<id>.png     one quiz image, by its opaque id
    POST /api/state        {pid} -> invited | started | finished
    POST /api/start        {pid|null, consent, answers} -> pid, session_start, answers already given
    POST /api/answer       {pid, survey_id, trial_index, image_id, response, rt_ms} -> stored (committed)
    GET  /status           progress, only with --status-token (Authorization: Bearer T, or ?token=T)
The key and survey.json are never read into a route. Flask + waitress (threads); one SQLite
connection under a lock, so answers are written one at a time, each committed before its reply.
"""

from __future__ import annotations

import errno
import hmac
import html
import math
import re
import signal
import socket
import sys
import threading
from pathlib import Path

from maskcycle.survey import db
from maskcycle.survey.analysis import SurveyDataError, refuse_other_survey
from maskcycle.survey.folder import load_survey
from maskcycle.survey.page import page_html

MAX_BODY = 16 * 1024  # bytes: the largest request (demographic answers) is far below
MAX_RT_MS = 24 * 3600 * 1000
PID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
IMAGE_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the participant id is in the page's address
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                               "script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'",
}


def served_page(survey: dict, open_enrolment: bool) -> str:
    """The page as served: images fetched by id (relative URLs, so a reverse proxy may mount it under
    a path), and what the page needs to talk to the server."""
    data = dict(survey["data"])
    for role in ("practice", "main", "attention"):
        data[role] = [{**item, "src": f"img/{item['id']}.png"} for item in data[role]]
    data["server"] = {"consent": survey["consent"], "questions": survey["questions"],
                      "invited_only": not open_enrolment}
    return page_html(data, survey["title"])


def _fields(body, required: dict) -> dict:
    """The JSON object `body` with exactly these fields of these types, else Refused(400)."""
    if not isinstance(body, dict):
        raise db.Refused(400, "the request body must be a JSON object")
    if set(body) != set(required):
        unknown = [name[:40] for name in sorted(set(body) - set(required))[:5]]
        raise db.Refused(400, f"fields needed: {sorted(required)}; not allowed: {unknown}")
    for name, types in required.items():
        types = types if isinstance(types, tuple) else (types,)
        if not isinstance(body[name], types) or (isinstance(body[name], bool) and bool not in types):
            raise db.Refused(400, f"field {name}: wrong type")
    return body


def _pid(value) -> str:
    if not isinstance(value, str) or not PID.match(value):
        raise db.Refused(400, "malformed participant id")
    return value


def make_app(survey: dict, conn, status_token: str | None = None, open_enrolment: bool = True):
    """The Flask application of one survey and its database connection."""
    from flask import Flask, Response, jsonify, request

    app = Flask(__name__, static_folder=None)  # no static route: every path is one of ours
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    lock = threading.Lock()
    page = served_page(survey, open_enrolment).encode("utf-8")
    items, images, n_items = survey["items"], survey["images"], len(survey["items"])
    choices = {q["id"]: set(q["choices"]) for q in survey["questions"]}

    def body() -> dict:
        if request.mimetype != "application/json":
            raise db.Refused(415, "send JSON (Content-Type: application/json)")
        data = request.get_json(silent=True)
        if data is None:
            raise db.Refused(400, "the request body is not valid JSON")
        return data

    @app.after_request
    def headers(resp):
        resp.headers.update(HEADERS)
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @app.errorhandler(db.Refused)
    def refused(exc):
        return jsonify(error=str(exc)), exc.status

    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(413)
    def http_error(exc):
        return jsonify(error=exc.description if exc.code != 413 else f"request body over {MAX_BODY} bytes"), exc.code

    @app.get("/")
    def index():
        return Response(page, mimetype="text/html")

    @app.get("/img/<name>")
    def image(name: str):
        iid = name.removesuffix(".png")
        if not name.endswith(".png") or not IMAGE_ID.match(iid) or iid not in images:
            raise db.Refused(404, "no such image")
        resp = Response(images[iid], mimetype="image/png")
        resp.headers["Cache-Control"] = "private, max-age=86400"
        return resp

    @app.post("/api/state")
    def api_state():
        pid = _pid(_fields(body(), {"pid": str})["pid"])
        with lock:
            p = db.participant(conn, pid)
        if p is None:
            raise db.Refused(404, "unknown participant id")
        return jsonify(state=db.state(p), answered=p["answered"])

    @app.post("/api/start")
    def api_start():
        b = _fields(body(), {"pid": (str, type(None)), "consent": bool, "answers": dict})
        pid = None if b["pid"] is None else _pid(b["pid"])
        answers = b["answers"]
        with lock:
            p = db.participant(conn, pid) if pid else None
            if not (p and p["session_start"]):  # consent and questions once, before the first image
                if survey["consent"] and not b["consent"]:
                    raise db.Refused(400, "consent is needed to take part")
                if set(answers) != set(choices) or any(not isinstance(answers[q], str) or answers[q] not in choices[q]
                                                       for q in answers):
                    raise db.Refused(400, "answer every question with one of its choices")
            return jsonify(db.start(conn, pid, bool(b["consent"]), answers, open_enrolment))

    @app.post("/api/answer")
    def api_answer():
        b = _fields(body(), {"pid": str, "survey_id": str, "trial_index": int, "image_id": str, "response": str,
                             "rt_ms": (int, float)})
        pid = _pid(b["pid"])
        try:  # the same check as for response files: no answer to another survey is stored
            refuse_other_survey({"this answer": b["survey_id"][:32]}, survey["survey_id"], "the served survey")
        except SurveyDataError as exc:
            raise db.Refused(409, str(exc)) from None
        if b["image_id"] not in items:
            raise db.Refused(400, "unknown image id")
        if b["response"] not in ("real", "fake"):
            raise db.Refused(400, "response must be real or fake")
        if not 0 <= b["trial_index"] < n_items:
            raise db.Refused(400, f"trial_index must be 0 to {n_items - 1}")
        rt = b["rt_ms"]
        if not (0 <= rt <= MAX_RT_MS and math.isfinite(rt)):  # compared first: float(10**400) would raise
            raise db.Refused(400, f"rt_ms must be 0 to {MAX_RT_MS}")
        with lock:
            return jsonify(db.record_answer(conn, pid, items[b["image_id"]], b["trial_index"], b["response"],
                                            float(rt), n_items))

    @app.get("/status")
    def status_page():
        if not status_token:
            raise db.Refused(404, "not found")  # off unless the operator gave a token
        given = request.args.get("token", "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth.removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), status_token.encode()):
            raise db.Refused(403, "status needs the token given to survey serve --status-token")
        with lock:
            s = db.status(conn)
        if request.args.get("format") == "json":
            return jsonify(s)
        return Response(f"<!DOCTYPE html><title>survey status</title><pre>{html.escape(db.status_text(s))}</pre>",
                        mimetype="text/html")

    return app


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening socket, or ValueError naming the address (port in use, unknown host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"--host {host}: {exc.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        why = "port already in use (choose another --port)" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ValueError(f"{host}:{port}: {why}") from None
    sock.listen(1024)
    return sock


def _stop(signum, frame):
    raise KeyboardInterrupt


# --- command line ----------------------------------------------------------------------------
def add_arguments(p) -> None:
    """`maskcycle survey serve`."""
    p.add_argument("--survey", required=True, help="survey folder from survey build (survey.html, key.csv; "
                   "optional consent.txt, questions.json)")
    p.add_argument("--db", required=True, help="SQLite database of answers (created when missing; never replaced)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port, printed)")
    p.add_argument("--status-token", help="enables GET /status for whoever sends this token (16+ characters)")
    p.add_argument("--open", action="store_true",
                   help="also admit participants without an invitation when invitations exist")
    p.add_argument("--threads", type=int, default=8, help="request threads")


def run_command(args) -> int:
    from waitress import serve

    if args.status_token is not None and len(args.status_token) < 16:
        raise ValueError("--status-token: use at least 16 characters")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be 0 to 65535, got {args.port}")
    survey = load_survey(args.survey)
    created = not Path(args.db).exists()
    conn = None if created else db.open_db(args.db, survey["survey_id"], survey["key_path"])
    sock = listen(args.host, args.port)  # a port in use is refused before a new database is made
    signal.signal(signal.SIGTERM, _stop)  # systemd's stop: end as Ctrl-C does (every answer is committed)
    try:
        conn = conn or db.open_db(args.db, survey["survey_id"], survey["key_path"], create=True)
        invited = conn.execute("SELECT COUNT(*) FROM participants WHERE invited_at IS NOT NULL").fetchone()[0]
        open_enrolment = args.open or invited == 0
        host, port = sock.getsockname()[:2]
        s = db.status(conn)
        print(f"serving survey {survey['survey_id']} from {args.survey} on http://{host}:{port}/ "
              f"({'new database' if created else 'database'} {args.db}: {s['participants']} participants, "
              f"{s['answers']} answers; {'anyone may take part' if open_enrolment else 'invited participants only'}"
              f"{'; /status with the token' if args.status_token else ''}); Ctrl-C stops", flush=True)
        app = make_app(survey, conn, args.status_token, open_enrolment)
        serve(app, sockets=[sock], threads=max(1, args.threads), connection_limit=1000, asyncore_use_poll=True,
              max_request_body_size=MAX_BODY, channel_timeout=60, ident="maskcycle", _quiet=True)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if conn is not None:
            conn.close()
    print("server stopped", file=sys.stderr)
    return 0
