"""`make lab`: JupyterLab serves the notebooks with the project's kernel (a real server on loopback)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lab_serves_the_notebooks_with_the_vhpc_kernel(tmp_path):
    port, token = free_port(), "vhpc-test-token"
    cmd = ["make", "-s", "lab", f"LAB_ARGS=--no-browser --port {port} --ServerApp.ip=127.0.0.1 "
           f"--IdentityProvider.token={token} --ServerApp.open_browser=False"]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path), "PYTHON": sys.executable}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        def get(path):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                         headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(req, timeout=5) as response:
                return json.load(response)

        deadline = time.time() + 60
        while True:
            try:
                specs = get("/api/kernelspecs")
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        assert "vhpc" in specs["kernelspecs"]
        notebook = get("/api/contents/01-microbenchmarks.ipynb")
        assert notebook["content"]["metadata"]["kernelspec"]["name"] == "vhpc"
        listing = {item["name"] for item in get("/api/contents")["content"]}
        assert {f"0{i}" for i in range(1, 6)} <= {name[:2] for name in listing}
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
