"""`llmoe ui`: the Dagster UI (webserver + daemon) and the MLflow UI on 127.0.0.1, each in its own process group,
both stopped together on Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from llmoe_pipeline.app.console import PortInUseError
from llmoe_pipeline.config.settings import DATA_DIR_OVERRIDE_ENV, Settings
from llmoe_pipeline.core.paths import REPO_ROOT
from llmoe_pipeline.tracking.server import MLFLOW_SERVER_ENV


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _stop_groups(procs: list[subprocess.Popen], grace_s: float = 30) -> None:
    """SIGINT to each process group (what Ctrl-C sends: both UIs shut down cleanly on it), then SIGKILL for
    whatever is left after `grace_s`."""
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGINT)
    deadline = time.time() + grace_s
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.1, deadline - time.time()))
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def run_ui(args: argparse.Namespace, settings: Settings, home: Path) -> int:
    """Start both UIs for `settings` (DAGSTER_HOME = `home`) until Ctrl-C or SIGTERM."""
    for port in (args.port, args.mlflow_port):
        if not port_free(port):
            raise PortInUseError(
                f"port {port} on 127.0.0.1 is already in use (choose another with --port/--mlflow-port)"
            )
    bin_dir = Path(sys.executable).parent
    mlflow_db = settings.home / "mlflow.db"

    def stop(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C, and also `kill` / a supervisor's SIGTERM, stop both UIs. Installed before the children start, so
    # they get SIGINT's default action even when a shell started `make ui &` with SIGINT ignored.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    commands = [
        [
            str(bin_dir / "dagster"),
            "dev",
            "-h",
            "127.0.0.1",
            "-p",
            str(args.port),
            "-w",
            str(REPO_ROOT / "workspace.yaml"),
        ],
        [
            str(bin_dir / "mlflow"),
            "ui",
            "--backend-store-uri",
            f"sqlite:///{mlflow_db}",
            "--host",
            "127.0.0.1",
            "--port",
            str(args.mlflow_port),
            "--workers",  # one person's local UI: MLflow's default 4 workers hold ≈ 1 GB for nothing
            "1",
        ],
    ]
    # Each UI in its own process group (dagster dev starts a webserver, a daemon and code servers; mlflow ui
    # starts uvicorn workers), so that stopping reaches all of them.
    # The code location reads its settings from these (it is another process); the values are this command's.
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "LLMOE_HOME": str(settings.home),
        "LLMOE_TICKERS": ",".join(settings.tickers),
        **({"LLMOE_CONFIG": settings.config_file} if settings.config_file else {}),
        **MLFLOW_SERVER_ENV,
    }
    if args.data_dir:
        env[DATA_DIR_OVERRIDE_ENV] = str(Path(args.data_dir).resolve())
    procs = [subprocess.Popen(cmd, cwd=REPO_ROOT, start_new_session=True, env=env) for cmd in commands]
    print(
        f"Dagster UI: http://127.0.0.1:{args.port}   MLflow UI: http://127.0.0.1:{args.mlflow_port}   "
        f"(DAGSTER_HOME={home}; Ctrl-C stops both)",
        flush=True,
    )
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        _stop_groups(procs)
    return 0
