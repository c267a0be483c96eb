"""Fixtures of the router tests: a throw-away PostgreSQL server, and an empty label cache in SQLite and in it."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from llmoe_pipeline.router.backends import RouterBackendConfig, make_backend
from llmoe_pipeline.router.cache import LabelCache


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A bare PostgreSQL server for this module (trust authentication on 127.0.0.1), as the postgres user when
    run as root (PostgreSQL refuses root)."""
    if not shutil.which("initdb") or not shutil.which("pg_ctl"):
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
    as_user: list[str] = []
    data = Path(tempfile.mkdtemp(prefix="llmoe-pg-")) / "data"
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(data.parent, 0o755)
        data.mkdir(mode=0o700)
        os.chown(data, pwd.getpwnam("postgres").pw_uid, -1)
    port = _free_port()
    run = lambda *argv: subprocess.run([*as_user, *argv], check=True, capture_output=True, timeout=120)  # noqa: E731
    run("initdb", "-D", str(data), "-A", "trust", "-U", "llmoe", "--no-sync")
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    run("pg_ctl", "-D", str(data), "-o", options, "-l", str(data / "server.log"), "-w", "start")
    try:
        yield f"postgresql://llmoe@127.0.0.1:{port}/postgres"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def cache(request, tmp_path):
    if request.param == "sqlite":
        with LabelCache(tmp_path / "cache.sqlite") as c:
            yield c
        return
    from llmoe_pipeline.router.cache.postgres import PostgresLabelCache

    with PostgresLabelCache(request.getfixturevalue("postgres_url")) as c:
        yield c
        with c._transaction() as cur:  # the server lives for the module: each test starts from an empty cache
            cur.execute("DROP TABLE router_labels")


# ---------------------------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def backend(router_model):
    b = make_backend(RouterBackendConfig())  # the default: what `make run` labels with on this machine
    yield b
    b.close()
