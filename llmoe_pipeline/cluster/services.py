"""The cluster's services: how each is started, when it is ready, and what it needs first.

Order (`SERVICES`): vLLM (slowest; its readiness is awaited last), PostgreSQL, the Erlang port mapper and RabbitMQ,
the MLflow server, the Dagster code server, webserver and daemon, then the Celery workers. Each binds 127.0.0.1.
PostgreSQL refuses to run as root: as root it runs as the `postgres` user (Debian's package creates it), with its
data folder owned by that user. Pure: no Dagster.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pwd
import shutil
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmoe_pipeline.cluster.layout import PG_USER, ClusterLayout, ClusterState, broker_url, pg_password, pg_url
from llmoe_pipeline.cluster.procs import ClusterError, port_open
from llmoe_pipeline.core.files import private_mkdir
from llmoe_pipeline.core.paths import REPO_ROOT
from llmoe_pipeline.tracking.server import MLFLOW_SERVER_ENV

BIN = Path(sys.executable).parent
DAGSTER_TEMPLATE = REPO_ROOT / "deploy" / "cluster" / "local" / "dagster.yaml"
LOCATION = "llmoe_pipeline"
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # the server itself (the /usr/sbin wrapper su's)
# SQLAlchemy 2.1 takes `postgresql://` for psycopg 3; Dagster and MLflow get psycopg2, which the `cluster` extra has.
SQLALCHEMY_DRIVER = "postgresql+psycopg2"
CONSUMER_TIMEOUT_MS = 6 * 3600 * 1000  # a step may run 6 h before RabbitMQ gives up on its (late) acknowledgement


# The environment this program started with, which services inherit: not what imports in this process add later
# (converting the model imports torch and OpenCV, which set TORCHINDUCTOR_CACHE_DIR, KMP_* and LD_LIBRARY_PATH), so
# a service gets the same environment, and `up` sees the same spec, whether or not this process converted the model.
LAUNCH_ENV = dict(os.environ)


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[], bool]
    port: str | None = None  # the state's port name, checked free before start
    timeout_s: float = 120
    user: str | None = None
    prepare: Callable[[], None] | None = None
    after_ready: Callable[[], None] | None = None
    wait_last: bool = False  # start early, wait for it at the end (vLLM)
    cwd: Path | None = None
    spec_extra: str = ""
    spec: str = field(init=False, default="")

    def __post_init__(self) -> None:
        keys = {k: v for k, v in self.env.items() if LAUNCH_ENV.get(k) != v}  # what the cluster set, not inherited
        payload = json.dumps([self.argv, keys, self.spec_extra], sort_keys=True)
        self.spec = hashlib.sha256(payload.encode()).hexdigest()[:16]


def postgres_bin(name: str) -> Path:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1])
    which = shutil.which(name)
    if which:
        return Path(which)
    raise ClusterError(f"PostgreSQL's {name} not found: run `make cluster-install` (Debian package postgresql)")


def base_env(layout: ClusterLayout, state: ClusterState) -> dict[str, str]:
    """What every service gets: the pipeline config, the database password file, the broker URL, quiet telemetry."""
    env = {k: v for k, v in LAUNCH_ENV.items() if k not in ("LLMOE_TICKERS", "LLMOE_DATA_DIR_OVERRIDE")}
    return {
        **env,
        "LLMOE_HOME": str(layout.home),
        "LLMOE_CONFIG": str(layout.config_file),
        "DAGSTER_HOME": str(layout.dagster_home),
        "PGPASSFILE": str(layout.pgpass),
        "LLMOE_DAGSTER_PG_URL": pg_url(state, "dagster", SQLALCHEMY_DRIVER),
        "LLMOE_CELERY_BROKER_URL": broker_url(layout, state),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "PYTHONUNBUFFERED": "1",
    }


def _http_ok(url: str) -> bool:
    import requests

    return requests.get(url, timeout=3).status_code == 200


# ------------------------------------------------------------------------------------------------ PostgreSQL
def _postgres_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ClusterError("running as root, PostgreSQL needs a user 'postgres': run `make cluster-install`") from None
    return "postgres"


def _let_user_traverse(folder: Path, user: str, home: Path) -> None:
    """The postgres user must reach its data folder: add o+x (enter, not list) to folders of the home on the way;
    a folder above the home that it cannot enter is an error naming it."""
    entry = pwd.getpwnam(user)
    for d in [folder, *folder.parents]:
        st = d.stat()
        if st.st_uid == entry.pw_uid or st.st_mode & stat.S_IXOTH:
            continue
        if d == home or home in d.parents:
            os.chmod(d, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
        else:
            raise ClusterError(
                f"PostgreSQL runs as user {user}, who cannot enter {d}: put LLMOE_HOME under a folder others may "
                f"traverse, or `chmod o+x {d}`"
            )


def postgres(layout: ClusterLayout, state: ClusterState) -> Service:
    data, user = layout.path("postgres", "data"), _postgres_user()

    def prepare() -> None:
        private_mkdir(data.parent)
        password = pg_password(layout, state)
        if (data / "PG_VERSION").exists():
            return
        import subprocess

        data.mkdir(mode=0o700, exist_ok=True)
        pwfile = data.parent / "initdb.pw"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        if user:
            _let_user_traverse(data.parent, user, layout.home)
            for path in (data.parent, data, pwfile):
                shutil.chown(path, user, user)
        argv = [str(postgres_bin("initdb")), "-D", str(data), "-U", PG_USER, "--auth=scram-sha-256"]
        argv += [f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale"]
        try:
            done = subprocess.run(argv, user=user, group=user, capture_output=True, text=True, cwd=data.parent)
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode:
            raise ClusterError(f"initdb failed: {' '.join(done.stderr.split())[:400]}")

    def ready() -> bool:
        import psycopg2

        psycopg2.connect(pg_url(state, "postgres"), connect_timeout=3).close()
        return True

    def create_databases() -> None:
        import psycopg2

        conn = psycopg2.connect(pg_url(state, "postgres"), connect_timeout=5)
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in ("dagster", "mlflow", "labels"):
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{db}"')
        conn.close()

    argv = [str(postgres_bin("postgres")), "-D", str(data), "-p", str(state.port("postgres"))]
    argv += ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"]
    return Service(
        "postgres",
        argv,
        {**base_env(layout, state), "HOME": str(data.parent)},
        ready,
        port="postgres",
        user=user,
        prepare=prepare,
        after_ready=create_databases,
        cwd=data.parent,
    )


# ------------------------------------------------------------------------------------------------ RabbitMQ
def _erlang_env(layout: ClusterLayout, state: ClusterState) -> dict[str, str]:
    folder = layout.path("rabbitmq")
    return {
        **base_env(layout, state),
        "HOME": str(folder),  # the Erlang cookie lives here
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "ERL_EPMD_PORT": str(state.port("epmd")),
        "RABBITMQ_NODENAME": "llmoe@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(state.port("rabbitmq")),
        "RABBITMQ_DIST_PORT": str(state.port("rabbitmq_dist")),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
        "RABBITMQ_LOG_BASE": str(folder / "log"),
        "RABBITMQ_LOGS": "-",  # to stdout: logs/rabbitmq.log
        "RABBITMQ_PID_FILE": str(folder / "rabbitmq.pid"),
    }


def epmd(layout: ClusterLayout, state: ClusterState) -> Service:
    port = state.port("epmd")
    argv = ["epmd", "-port", str(port), "-address", "127.0.0.1"]
    return Service("epmd", argv, _erlang_env(layout, state), lambda: port_open(port), port="epmd", timeout_s=20)


def rabbitmq(layout: ClusterLayout, state: ClusterState) -> Service:
    folder = layout.path("rabbitmq")

    def prepare() -> None:
        if not RABBITMQ_SERVER.exists():
            raise ClusterError(f"{RABBITMQ_SERVER} not found: run `make cluster-install` (Debian rabbitmq-server)")
        private_mkdir(folder)
        password = broker_url(layout, state).split(":")[2].split("@")[0]
        conf = [
            f"listeners.tcp.1 = 127.0.0.1:{state.port('rabbitmq')}",
            "default_user = llmoe",
            f"default_pass = {password}",
            f"consumer_timeout = {CONSUMER_TIMEOUT_MS}",
            "log.console = true",
            "log.file = false",
        ]
        for name, text in (("rabbitmq.conf", "\n".join(conf) + "\n"), ("enabled_plugins", "[].\n")):
            (folder / name).write_text(text)
            os.chmod(folder / name, 0o600)

    def ready() -> bool:
        from kombu import Connection

        with Connection(broker_url(layout, state), connect_timeout=3) as conn:
            conn.connect()
        return True

    return Service(
        "rabbitmq",
        [str(RABBITMQ_SERVER)],
        _erlang_env(layout, state),
        ready,
        port="rabbitmq",
        prepare=prepare,
        cwd=folder,
    )


# ------------------------------------------------------------------------------------------------ MLflow
def mlflow(layout: ClusterLayout, state: ClusterState) -> Service:
    port, artifacts = state.port("mlflow"), layout.path("mlflow", "artifacts")
    argv = [str(BIN / "mlflow"), "server", "--backend-store-uri", pg_url(state, "mlflow", SQLALCHEMY_DRIVER)]
    argv += ["--serve-artifacts"]
    argv += ["--artifacts-destination", artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", "2"]
    return Service(
        "mlflow",
        argv,
        {**base_env(layout, state), **MLFLOW_SERVER_ENV},
        lambda: _http_ok(f"http://127.0.0.1:{port}/health"),
        port="mlflow",
        prepare=lambda: (private_mkdir(artifacts), None)[1],
        timeout_s=180,
        cwd=layout.path("mlflow"),
    )
