"""A bounded load test of a running survey server on this machine (127.0.0.1 only).

    python -m maskcycle.survey.load --url http://127.0.0.1:8000/ --participants 100 [--timeout 300]

N participants at once, each in its own thread and connection: load the page, start, then fetch
each image and answer it, in turn (each answer waits for the server's acknowledgement, as the page
does).
Reports throughput (answers per second) and latency percentiles of the answer requests, and checks
afterwards, in the database, that every acknowledged answer is stored exactly once.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import threading
import time
import urllib.parse

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Client:
    """One keep-alive HTTP connection to the server (stdlib only)."""

    def __init__(self, url: str, timeout: float = 30):
        u = urllib.parse.urlsplit(url)
        if u.hostname not in LOOPBACK:
            raise ValueError(f"{url}: the load test targets this machine only (127.0.0.1)")
        self.host, self.port, self.timeout = u.hostname, u.port or 80, timeout
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
                ) -> tuple[int, bytes]:
        for attempt in (0, 1):  # a keep-alive connection the server closed: reconnect once
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def post(self, path: str, obj) -> tuple[int, dict]:
        status, raw = self.request("POST", path, json.dumps(obj).encode(), {"Content-Type": "application/json"})
        try:
            return status, json.loads(raw)
        except json.JSONDecodeError:
            return status, {"error": raw[:200].decode("utf-8", "replace")}

    def close(self) -> None:
        self.conn.close()


def page_data(html: str) -> dict:
    m = re.search(r'<script id="survey-data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def participant(url: str, rng_seed: int, latencies: list, acked: list, errors: list, deadline: float,
                pid: str | None = None) -> None:
    """One participant answering every image (practice first), as the page would; what the server
    acknowledged goes to `acked` as (pid, image_id, response)."""
    import random

    rnd = random.Random(rng_seed)
    c = Client(url)
    try:
        status, raw = c.request("GET", "/")
        data = page_data(raw.decode())
        order = data["practice"] + data["main"] + data["attention"]
        rnd.shuffle(order)
        status, st = c.post("/api/start", {"pid": pid, "consent": bool(data["server"]["consent"]),
                                           "answers": {q["id"]: q["choices"][0] for q in data["server"]["questions"]}})
        if status != 200:
            errors.append(f"start: {status} {st}")
            return
        for t, item in enumerate(order[st["answered"]:], start=st["answered"]):
            if time.monotonic() > deadline:
                errors.append("deadline passed")
                return
            status, png = c.request("GET", f"/img/{item['id']}.png")  # the image is shown before each answer
            if status != 200:
                errors.append(f"image: {status}")
                return
            response = rnd.choice(["real", "fake"])
            t0 = time.perf_counter()
            status, reply = c.post("/api/answer", {"pid": st["pid"], "survey_id": data["survey_id"], "trial_index": t,
                                                   "image_id": item["id"], "response": response,
                                                   "rt_ms": rnd.randint(300, 4000)})
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors.append(f"answer: {status} {reply}")
                return
            acked.append((st["pid"], item["id"], response))
    except OSError as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        c.close()


def run_load(url: str, participants: int = 100, timeout: float = 300) -> dict:
    """Start `participants` at once and wait (at most `timeout` s); figures and what was acknowledged."""
    Client(url).close()  # refuses anything but this machine before any thread starts
    latencies, acked, errors = [], [], []
    deadline = time.monotonic() + timeout
    barrier = threading.Barrier(participants)

    def one(k: int) -> None:
        barrier.wait()
        participant(url, k, latencies, acked, errors, deadline)

    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(participants)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(max(0.0, deadline - time.monotonic()) + 5)
    wall = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(q: float) -> float | None:
        return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None

    return {"participants": participants, "answers_acknowledged": len(acked), "errors": errors[:10],
            "n_errors": len(errors), "wall_s": round(wall, 3),
            "answers_per_s": round(len(acked) / wall, 1) if wall else None,
            "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
            "acked": acked}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m maskcycle.survey.load", description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="a running `maskcycle survey serve` on this machine")
    p.add_argument("--participants", type=int, default=100)
    p.add_argument("--timeout", type=float, default=300, help="seconds; participants still answering then stop")
    p.add_argument("--db", help="the server's database: check every acknowledged answer is stored once")
    args = p.parse_args(argv)
    try:
        result = run_load(args.url, args.participants, args.timeout)
    except ValueError as exc:
        print(f"load: error: {exc}")
        return 2
    acked = result.pop("acked")
    if args.db:
        import sqlite3

        conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
        rows = conn.execute("SELECT pid, image_id, response FROM answers").fetchall()
        result["stored_rows"] = len(rows)
        result["every_ack_stored_once"] = len(set(rows)) == len(rows) and set(acked) <= set(rows)
    print(json.dumps(result, indent=2))
    return 0 if not result["n_errors"] and result.get("every_ack_stored_once", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())
