"""MLflow's server starts without its job-execution machinery (a Huey job runner and consumers, ~2 GB) wherever this
project starts it: `llmoe ui` and the cluster's `mlflow server`; and the switch is the one installed MLflow reads."""

from __future__ import annotations

import argparse
import signal

from llmoe_pipeline.app import ui
from llmoe_pipeline.config.settings import load_settings
from llmoe_pipeline.tracking.server import MLFLOW_SERVER_ENV

SWITCH = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def test_installed_mlflow_reads_the_switch_as_off(monkeypatch):
    from mlflow.environment_variables import MLFLOW_SERVER_ENABLE_JOB_EXECUTION

    monkeypatch.delenv(SWITCH, raising=False)
    assert MLFLOW_SERVER_ENABLE_JOB_EXECUTION.get() is True  # MLflow's default: on
    monkeypatch.setenv(SWITCH, MLFLOW_SERVER_ENV[SWITCH])
    assert MLFLOW_SERVER_ENABLE_JOB_EXECUTION.get() is False


class ExitedAtOnce:
    """A started UI process that has already exited, recording its command line and environment."""

    started: list[tuple[list[str], dict]] = []

    def __init__(self, cmd, *, env, **_):
        self.started.append((cmd, env))
        self.pid = -1

    def poll(self) -> int:
        return 0


def test_llmoe_ui_starts_mlflow_without_job_execution(tmp_path, monkeypatch, data_dir):
    monkeypatch.setattr(ui.subprocess, "Popen", ExitedAtOnce)
    monkeypatch.setattr(ui, "_stop_groups", lambda procs: None)
    monkeypatch.setattr(ui, "port_free", lambda port: True)
    settings = load_settings(data_dir=data_dir, home=tmp_path / "home")
    ExitedAtOnce.started.clear()
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:  # run_ui installs its own SIGINT/SIGTERM handlers: the test runner's come back after
        assert ui.run_ui(argparse.Namespace(port=0, mlflow_port=0, data_dir=None), settings, tmp_path / "dagster") == 0
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    (mlflow_env,) = [env for cmd, env in ExitedAtOnce.started if cmd[0].endswith("mlflow") and cmd[1] == "ui"]
    assert mlflow_env[SWITCH] == "false"


def test_the_clusters_mlflow_server_starts_without_job_execution(tmp_path, monkeypatch):
    from llmoe_pipeline.cluster import services
    from llmoe_pipeline.cluster.layout import ClusterLayout, load_or_create_state

    monkeypatch.setenv("LLMOE_CLUSTER_PORT_BASE", "41000")
    layout = ClusterLayout(tmp_path / "home")
    service = services.mlflow(layout, load_or_create_state(layout))
    assert service.argv[1] == "server" and service.env[SWITCH] == "false"
    assert service.env["LLMOE_HOME"] == str(layout.home)  # and everything else every service gets
