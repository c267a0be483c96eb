"""`make ui` is `llmoe ui`: the Dagster UI (webserver + daemon) and MLflow's UI answer on 127.0.0.1, and one
SIGTERM (or Ctrl-C) stops every process the two started, leaving both ports free."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request

import psutil

from llmoe_pipeline.app.ui import port_free
from llmoe_pipeline.core.paths import REPO_ROOT
from llmoe_pipeline_tests.e2e.support import SERVER_START_TIMEOUT_S, free_port


def _get(url: str, deadline: float) -> bytes:
    while True:
        try:
            return urllib.request.urlopen(url, timeout=5).read()
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(1)


def _cmdline(process: psutil.Process) -> str:
    """Its command line, or "" for one that already exited (a short-lived helper can be a zombie by now)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def test_llmoe_ui_serves_both_uis_and_sigterm_stops_every_process(tmp_path):
    port, mlflow_port = free_port(), free_port()
    env = {**os.environ, "LLMOE_HOME": str(tmp_path / "home"), "LLMOE_TICKERS": "AAPL"}
    ui = subprocess.Popen(
        [sys.executable, "-m", "llmoe_pipeline.app.cli", "ui", "--port", str(port), "--mlflow-port", str(mlflow_port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + SERVER_START_TIMEOUT_S
        assert b"dagster_webserver_version" in _get(f"http://127.0.0.1:{port}/server_info", deadline)
        assert _get(f"http://127.0.0.1:{mlflow_port}/health", deadline) == b"OK"
        started = psutil.Process(ui.pid).children(recursive=True)
        names = " ".join(_cmdline(p) for p in started)
        assert "dagster dev" in names and "mlflow ui" in names
        assert (tmp_path / "home" / "dagster" / "dagster.yaml").exists()  # the project's instance settings
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=90) == 0
        gone, alive = psutil.wait_procs(started, timeout=30)
        assert not alive, [_cmdline(p) for p in alive]
        assert port_free(port) and port_free(mlflow_port)  # nothing listens any more
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGKILL)
        for p in psutil.process_iter():
            if str(tmp_path) in _cmdline(p):
                with contextlib.suppress(psutil.Error):
                    p.kill()
