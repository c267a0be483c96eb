"""Where a local cluster keeps its state: one folder, `$LLMOE_HOME/cluster/`, with every service's data and log.

    cluster/
      state.json          ports, cluster id, the secrets' file names (no secret values)
      config.yaml         the pipeline config the code location and the workers load (yours + the cluster's sections)
      secrets/            pgpass (PostgreSQL password, for libpq: PGPASSFILE), broker.env (the RabbitMQ URL)
      pids/<service>.json one per running service: pid, process group, start time, command
      logs/<service>.log  stdout and stderr of each service
      postgres/data       PostgreSQL (Dagster's storage, MLflow's backend store, the router label cache)
      rabbitmq/           the Celery broker's node data and config
      mlflow/artifacts    what `mlflow server --serve-artifacts` stores (clients upload through the server)
      shared/             the storage every worker reaches (storage.shared_url = file://…/shared, standing in for s3)
      dagster/            DAGSTER_HOME of the webserver, daemon and code server (dagster.yaml, workspace.yaml)
      workers/w<N>/       each Celery worker's own LLMOE_HOME

Pure: no Dagster.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from llmoe_pipeline.core.files import FILE_MODE, private_mkdir, write_text_atomic

PORT_BASE_ENV = "LLMOE_CLUSTER_PORT_BASE"
DEFAULT_PORT_BASE = 18300
# Offsets from the port base. Every service binds 127.0.0.1 only.
PORT_OFFSETS = {
    "webserver": 0,  # Dagster UI and GraphQL
    "code_server": 1,  # the code location's gRPC server
    "mlflow": 2,
    "vllm": 3,
    "postgres": 4,
    "rabbitmq": 5,
    "rabbitmq_dist": 6,  # Erlang distribution (rabbitmqctl)
    "epmd": 7,  # Erlang port mapper
}
PG_USER = "llmoe"
DATABASES = ("dagster", "mlflow", "labels")


@dataclass(frozen=True)
class ClusterLayout:
    home: Path  # the LLMOE_HOME of the control plane (webserver, daemon, code server); the model is converted here

    @property
    def root(self) -> Path:
        return self.home / "cluster"

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @property
    def state_file(self) -> Path:
        return self.path("state.json")

    @property
    def config_file(self) -> Path:
        return self.path("config.yaml")

    @property
    def pgpass(self) -> Path:
        return self.path("secrets", "pgpass")

    @property
    def broker_file(self) -> Path:
        return self.path("secrets", "broker.env")

    @property
    def dagster_home(self) -> Path:
        return self.path("dagster")

    @property
    def shared(self) -> Path:
        return self.path("shared")

    def worker_home(self, n: int) -> Path:
        return self.path("workers", f"w{n}")

    def log(self, service: str) -> Path:
        return self.path("logs", f"{service}.log")

    def pid_file(self, service: str) -> Path:
        return self.path("pids", f"{service}.json")


@dataclass(frozen=True)
class ClusterState:
    """What `up` decided once and every later command reads: ports and the id that tags every process started."""

    cluster_id: str
    port_base: int

    def port(self, service: str) -> int:
        return self.port_base + PORT_OFFSETS[service]


def load_or_create_state(layout: ClusterLayout) -> ClusterState:
    """The cluster's state; created (port base from $LLMOE_CLUSTER_PORT_BASE, default 18300) on first use."""
    if layout.state_file.exists():
        raw = json.loads(layout.state_file.read_text())
        return ClusterState(raw["cluster_id"], int(raw["port_base"]))
    base = int(os.environ.get(PORT_BASE_ENV) or DEFAULT_PORT_BASE)
    if not 1024 <= base <= 65535 - len(PORT_OFFSETS):
        raise ValueError(f"${PORT_BASE_ENV}={base}: give a port between 1024 and {65535 - len(PORT_OFFSETS)}")
    state = ClusterState(f"llmoe-{secrets.token_hex(6)}", base)
    private_mkdir(layout.root)
    write_text_atomic(
        json.dumps({"cluster_id": state.cluster_id, "port_base": state.port_base}, indent=2), layout.state_file
    )
    return state


def read_state(layout: ClusterLayout) -> ClusterState | None:
    return load_or_create_state(layout) if layout.state_file.exists() else None


def secret(path: Path, make) -> str:
    """The secret stored in `path` (0600), created with `make()` the first time."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    private_mkdir(path.parent)
    write_text_atomic(value + "\n", path)
    os.chmod(path, FILE_MODE)
    return value


def pg_password(layout: ClusterLayout, state: ClusterState) -> str:
    """The PostgreSQL password, kept in a libpq password file (PGPASSFILE) that every service reads."""
    if layout.pgpass.exists():
        return layout.pgpass.read_text().strip().rsplit(":", 1)[1]
    password = secrets.token_urlsafe(24)
    secret(layout.pgpass, lambda: f"127.0.0.1:{state.port('postgres')}:*:{PG_USER}:{password}")
    return password


def pg_url(state: ClusterState, database: str, driver: str = "postgresql") -> str:
    """A PostgreSQL URL without the password (libpq takes it from PGPASSFILE)."""
    return f"{driver}://{PG_USER}@127.0.0.1:{state.port('postgres')}/{database}"


def broker_url(layout: ClusterLayout, state: ClusterState) -> str:
    """The RabbitMQ URL with its password (only ever in the services' environment and a 0600 file)."""
    password = secret(layout.broker_file, lambda: secrets.token_urlsafe(24))
    return f"pyamqp://llmoe:{password}@127.0.0.1:{state.port('rabbitmq')}//"
