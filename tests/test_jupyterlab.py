"""JupyterLab from the project's environment: a loopback server lists notebooks/ through its REST API,
and the kernel papermill uses ('maskcycle', "Python (maskcycle)") is the one it offers."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, token: str):
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


@pytest.mark.slow
def test_jupyterlab_lists_notebooks_over_rest(tmp_path):
    token, port = secrets.token_hex(16), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={ROOT}"]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, listing = time.monotonic() + 120, None
        while listing is None:
            assert proc.poll() is None, f"jupyter lab exited early:\n{(tmp_path / 'lab.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no answer in 120 s:\n{(tmp_path / 'lab.log').read_text()[-3000:]}"
            try:
                listing = get_json(f"{base}/api/contents/notebooks", token)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        names = {item["name"] for item in listing["content"]}
        committed = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
        assert "02_training.ipynb" in names and committed <= names
        kinds = {item["name"]: item["type"] for item in listing["content"]}
        assert kinds["02_training.ipynb"] == "notebook"
        specs = get_json(f"{base}/api/kernelspecs", token)["kernelspecs"]
        assert specs["maskcycle"]["spec"]["display_name"] == "Python (maskcycle)"
        with pytest.raises(urllib.error.HTTPError):  # the token is required
            urllib.request.urlopen(f"{base}/api/contents/notebooks", timeout=5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
    assert proc.returncode is not None
