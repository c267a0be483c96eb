"""Helpers for the cluster tests: a local cluster on free ports in a temporary home, and reads of its Dagster
event log (PostgreSQL) and label cache.

One cluster serves every test of the package (starting one takes 1-3 minutes: vLLM on a 2-core CPU dominates). It
runs the e2e data slice's protocol (deploy/cluster/local/slice.yaml: AAPL and MSFT) on a shorter span (TEST_SPLIT:
210 windows each) with 16 windows per label-cache commit, so that a test can stop the vLLM server between commits.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from llmoe_pipeline.cluster.layout import PORT_OFFSETS, ClusterLayout, ClusterState, pg_url
from llmoe_pipeline.cluster.procs import port_free
from llmoe_pipeline.core.paths import REPO_ROOT

SLICE_CONFIG = REPO_ROOT / "deploy" / "cluster" / "local" / "slice.yaml"
BATCH = 16  # windows per label-cache commit in the tests
TICKERS = ("AAPL", "MSFT")


def services_installed() -> str | None:
    """Why the cluster cannot start here (a missing system service), or None."""
    import glob

    if not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        return "PostgreSQL is not installed (bash deploy/cluster/install.sh)"
    if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() or not shutil.which("epmd"):
        return "RabbitMQ is not installed (bash deploy/cluster/install.sh)"
    return None


def free_port_base() -> int:
    """A base with every cluster port free on 127.0.0.1."""
    for _ in range(200):
        base = random.randrange(20000, 60000, 10)
        if all(port_free(base + offset) for offset in PORT_OFFSETS.values()):
            return base
    raise RuntimeError("no free range of cluster ports")


# The slice's protocol on a shorter span: labelling through the float32 server dominates these tests, and these
# 190 training windows (the last 30 % for validation) are the fewest that left every regime well above the
# experts' minimums (MIN_ROWS_PER_REGIME) at every threshold quantile of the grid, with float32 and bfloat16 labels
# alike (16+ windows to spare); then one test month. 210 windows per ticker (the slice: 334).
TEST_SPLIT = {
    "train_start": "2013-02-01",
    "train_end": "2013-10-31",
    "test_start": "2013-11-01",
    "test_end": "2013-11-29",
}


def write_test_config(path: Path) -> Path:
    """The slice on TEST_SPLIT, with 16 windows per cache commit, no generated explanations (generation is twice
    the cost of scoring on a CPU, and nothing here is about explanations) and the LLM router only (each variant
    adds Celery steps, each a process start; the variants are tested in-process)."""
    config = yaml.safe_load(SLICE_CONFIG.read_text())
    config["split"] = {**config["split"], **TEST_SPLIT}
    config["router_backend"] = {**config.get("router_backend", {}), "batch_size": BATCH}
    config["router"] = {**config.get("router", {}), "explain_splits": ["none"], "variants": ["llm"]}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Cluster:
    home: Path
    layout: ClusterLayout
    state: ClusterState
    config: Path

    @property
    def port(self) -> int:
        return self.state.port("webserver")

    def instance(self):
        """The cluster's Dagster instance (PostgreSQL), read from this process."""
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.layout.dagster_home))

    def label_cache(self):
        from llmoe_pipeline.router.cache.postgres import PostgresLabelCache

        return PostgresLabelCache(pg_url(self.state, "labels"))

    def shared_assets(self):
        from llmoe_pipeline.core.storage import open_store

        return open_store(self.layout.shared.resolve().as_uri()).child("assets")


def cluster_env(cluster_home: Path, layout: ClusterLayout, state: ClusterState) -> dict[str, str]:
    """What this process needs to read the cluster's Dagster storage and label cache."""
    return {
        "PGPASSFILE": str(layout.pgpass),
        "LLMOE_DAGSTER_PG_URL": pg_url(state, "dagster", "postgresql+psycopg2"),
    }


def wait_for(check, timeout_s: float, what: str, poll_s: float = 1.0):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError(f"{what}: not after {timeout_s:.0f} s")


def set_env(values: dict[str, str]) -> None:
    os.environ.update(values)
