"""The cluster tests' one local cluster (package scope: started once, stopped after the last test, whatever
happened). Tests that need it are marked `cluster`; they are skipped, with the reason, where PostgreSQL or RabbitMQ
is not installed (`bash deploy/cluster/install.sh`; CI's .ci/run installs them)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from llmoe_pipeline_tests.cluster.support import (
    Cluster,
    cluster_env,
    free_port_base,
    services_installed,
    set_env,
    write_test_config,
)

_PACKAGE_DIR = Path(__file__).resolve().parent
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "cluster-logs"


def pytest_collection_modifyitems(config, items):
    why = services_installed()
    for item in items:
        if Path(str(item.fspath)).parent == _PACKAGE_DIR and item.get_closest_marker("cluster") and why:
            item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="package")
def cluster(router_model, session_home):
    """A running cluster in a fresh home (the session's converted model linked in), on free ports."""
    from llmoe_pipeline.cluster.control import down, up
    from llmoe_pipeline.cluster.layout import ClusterLayout, load_or_create_state

    home = Path(tempfile.mkdtemp(prefix="llmoe-cluster-test-"))
    (home / "models").symlink_to(session_home / "models", target_is_directory=True)
    config = write_test_config(home / "test-config.yaml")
    layout = ClusterLayout(home)
    previous = os.environ.get("LLMOE_CLUSTER_PORT_BASE")
    os.environ["LLMOE_CLUSTER_PORT_BASE"] = str(free_port_base())
    try:
        state = load_or_create_state(layout)
    finally:
        if previous is None:
            os.environ.pop("LLMOE_CLUSTER_PORT_BASE", None)
        else:
            os.environ["LLMOE_CLUSTER_PORT_BASE"] = previous
    set_env(cluster_env(home, layout, state))
    try:
        up(home, str(config))
        yield Cluster(home, layout, state, config)
    finally:
        try:
            down(home)
        finally:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for log in layout.path("logs").glob("*.log"):
                shutil.copyfile(log, ARTIFACTS / log.name)
            shutil.rmtree(home, ignore_errors=True)
