"""What the cluster is built on, without its services: storage every worker reaches (fsspec URLs), the IO manager
and the model store on it, the cluster's config sections, and process handling (start, stop, orphans, ports)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline.cluster.procs import ClusterError, port_free, running, start, stop, sweep, tagged
from llmoe_pipeline.core.storage import LocalStore, RemoteStore, open_store
from llmoe_pipeline.defs.io_manager import load_asset_value, store_asset_value


def tiny_model_set():
    from llmoe_pipeline.models.model_set import ModelSet

    return ModelSet(name="x", params={"a": 1}, models={}, search_table=pd.DataFrame({"trial": [0, 1]}))


@pytest.fixture(params=["memory", "file"])
def store_url(request, tmp_path):
    """A storage URL: memory:// (an object store: no folders, no rename) or file:// (a shared mount)."""
    if request.param == "memory":
        return f"memory://llmoe-test-{uuid.uuid4().hex[:8]}"
    return (tmp_path / "shared").as_uri()


def test_remote_store_round_trips_bytes_and_refuses_keys_that_escape(store_url):
    store = open_store(store_url)
    assert isinstance(store, RemoteStore)
    store.write_bytes("assets/x/AAPL.parquet", b"one")
    store.write_bytes("assets/x/AAPL.parquet", b"two")  # replaced whole
    assert store.read_bytes("assets/x/AAPL.parquet") == b"two"
    assert store.list("assets") == ["assets/x/AAPL.parquet"]
    assert store.child("assets").read_bytes("x/AAPL.parquet") == b"two"
    for bad in ("../escaped", "a/../../escaped", "/tmp/escaped", "", "."):
        with pytest.raises(ValueError, match="escapes the store"):
            store.write_bytes(bad, b"x")
    store.delete("assets/x/AAPL.parquet")
    assert not store.exists("assets/x/AAPL.parquet")


def test_a_folder_is_a_local_store_with_atomic_writes(tmp_path):
    store = open_store(tmp_path / "assets")
    assert isinstance(store, LocalStore)
    store.write_bytes("k/v.json", b"{}")
    assert (tmp_path / "assets/k/v.json").read_bytes() == b"{}"
    assert not list((tmp_path / "assets/k").glob(".*.tmp"))
    with pytest.raises(ValueError, match="escapes"):
        store.write_bytes("../out", b"x")


def test_io_manager_values_round_trip_on_shared_storage(store_url):
    """DataFrames, JSON and model sets through a storage URL, as a worker on another machine reads them; a
    partition key never carries a write out of the store."""
    frame = pd.DataFrame({"date": pd.to_datetime(["2016-01-04", "2016-01-05"]), "p": [0.25, np.nan]})
    base = open_store(store_url).child("assets")
    written = store_asset_value(base, ["router_labels"], "AAPL", frame)
    assert written == f"{store_url}/assets/router_labels/AAPL.parquet"
    pd.testing.assert_frame_equal(load_asset_value(store_url + "/assets", ["router_labels"], "AAPL"), frame)
    store_asset_value(base, ["mlflow_runs"], "MSFT", {"LLMoE": "http://x"})
    assert load_asset_value(base, ["mlflow_runs"], "MSFT") == {"LLMoE": "http://x"}
    models = tiny_model_set()
    store_asset_value(base, ["expert_models", "llm"], "optimistic|AAPL", models)
    again = load_asset_value(base, ["expert_models", "llm"], "optimistic|AAPL")
    assert (again.name, dict(again.params)) == (models.name, dict(models.params))
    pd.testing.assert_frame_equal(again.search_table, models.search_table)
    with pytest.raises(ValueError, match="escapes"):
        store_asset_value(base, ["raw_prices"], "/tmp/ESCAPED", frame)
    with pytest.raises(FileNotFoundError, match="not materialized"):
        load_asset_value(base, ["raw_prices"], "GE")


def test_model_store_on_shared_storage_trains_once_and_replaces_an_unreadable_entry(store_url):
    from llmoe_pipeline.models.model_set import ModelSet
    from llmoe_pipeline.models.store import ModelStore

    calls = []

    def train():
        calls.append(1)
        return tiny_model_set()

    store = ModelStore(open_store(store_url).child("model_cache"))
    assert store.get_or_train("fp", ModelSet, train)[1] is False
    assert store.get_or_train("fp", ModelSet, train)[1] is True  # another worker would find it too
    open_store(store_url).child("model_cache").write_bytes("fp.safetensors", b"not a model")
    assert store.get_or_train("fp", ModelSet, train)[1] is False
    assert len(calls) == 2


def test_cluster_sections_are_validated(tmp_path):
    from llmoe_pipeline.config.settings import ConfigError, load_settings

    config = tmp_path / "c.yaml"
    config.write_text("storage:\n  label_cache_url: postgresql://u:secret@h/db\n")
    with pytest.raises(ConfigError, match="must not carry a password"):
        load_settings(config)
    config.write_text("storage:\n  shared_url: /mnt/shared\n")
    with pytest.raises(ConfigError, match="shared_url must be a URL"):
        load_settings(config)
    config.write_text("executor:\n  kind: dask\n")
    with pytest.raises(ConfigError, match="executor.kind"):
        load_settings(config)


def test_celery_executor_is_chosen_by_config_and_keeps_the_broker_url_out_of_run_config(tmp_path):
    from llmoe_pipeline.cluster.celery_config import executor_config
    from llmoe_pipeline.config.settings import load_settings
    from llmoe_pipeline.definitions import build_executor

    config = tmp_path / "c.yaml"
    config.write_text("executor:\n  kind: celery\n")
    settings = load_settings(config)
    assert build_executor(settings).name == "celery"
    assert executor_config(settings.executor)["broker"] == {"env": "LLMOE_CELERY_BROKER_URL"}
    assert executor_config(settings.executor)["config_source"]["task_acks_late"] is True
    assert build_executor(load_settings()).name == "in_process"


def test_a_service_and_what_it_left_outside_its_group_are_stopped(tmp_path):
    """A service whose child starts its own session (as Erlang's helpers do) is stopped with it; `sweep` finds
    anything else carrying the cluster's tag; a pid file of a dead process is not taken for a running service."""
    cluster_id = f"test-{uuid.uuid4().hex[:8]}"
    script = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True); "
        "time.sleep(300)"
    )
    pid_file, log = tmp_path / "pids/svc.json", tmp_path / "logs/svc.log"
    record = start("svc", [sys.executable, "-c", script], env={}, log=log, pid_file=pid_file, cluster_id=cluster_id)
    deadline = time.time() + 30
    while len(tagged(cluster_id)) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert len(tagged(cluster_id)) == 2 and running(pid_file).pid == record.pid
    assert stop(pid_file, grace_s=10)
    assert tagged(cluster_id) == [] and not pid_file.exists() and running(pid_file) is None
    # An orphan that escaped its service's process tree is still found by its tag.
    stray = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"], env={"LLMOE_CLUSTER_ID": cluster_id}
    )
    try:
        assert [p.pid for p in tagged(cluster_id)] == [stray.pid]
        assert len(sweep(cluster_id)) == 1 and stray.wait(10) is not None
    finally:
        stray.kill()


def test_a_taken_port_is_one_clear_line_before_anything_starts(tmp_path, monkeypatch):
    import socket

    from llmoe_pipeline.cluster import control

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        base = holder.getsockname()[1] - 4  # the cluster's PostgreSQL port
        assert not port_free(base + 4)
        monkeypatch.setenv("LLMOE_CLUSTER_PORT_BASE", str(base))
        monkeypatch.setattr(control, "build_services", _services_without_side_effects)
        with pytest.raises(ClusterError) as error:
            control.up(tmp_path / "home", None, "AAPL")
    message = str(error.value)
    assert "\n" not in message and f"port {base + 4} on 127.0.0.1 (for postgres) is already in use" in message
    assert not list((tmp_path / "home/cluster/pids").glob("*.json"))  # nothing was started


def _services_without_side_effects(layout, state, raw, workers):
    from llmoe_pipeline.cluster.services import Service

    return [Service(name, ["true"], {}, lambda: True, port=name) for name in ("postgres", "rabbitmq")]


def test_down_stops_the_writers_before_the_broker_and_the_database():
    from llmoe_pipeline.cluster.control import ORDER, _down_tiers

    names = ["worker2", "worker1", *reversed(ORDER)]
    tiers = _down_tiers(names)
    assert sorted(n for tier in tiers for n in tier) == sorted(names)  # each service once
    assert tiers[0] == ["worker2", "worker1", "daemon", "webserver", "code_server", "mlflow", "vllm"]
    assert tiers[1:] == [["rabbitmq", "postgres"], ["epmd"]]
    assert _down_tiers(["postgres", "worker1"]) == [["worker1"], ["postgres"]]  # a partial cluster keeps the order


def test_what_this_process_adds_to_its_environment_reaches_no_service(tmp_path, monkeypatch):
    """Converting the model imports libraries that set variables (TORCHINDUCTOR_CACHE_DIR, LD_LIBRARY_PATH, ...):
    the services get the environment this program started with, so their specs do not depend on whether this
    process converted the model (it did: `make cluster-run` restarted the vLLM server `make cluster-up` started)."""
    from llmoe_pipeline.cluster.layout import ClusterLayout, load_or_create_state
    from llmoe_pipeline.cluster.services import Service, base_env

    monkeypatch.setenv("LLMOE_CLUSTER_PORT_BASE", "41000")
    layout = ClusterLayout(tmp_path / "home")
    state = load_or_create_state(layout)
    before = Service("svc", ["true"], base_env(layout, state), lambda: True)
    monkeypatch.setenv("LLMOE_TEST_SET_BY_AN_IMPORT", "1")
    after = Service("svc", ["true"], base_env(layout, state), lambda: True)
    assert "LLMOE_TEST_SET_BY_AN_IMPORT" not in after.env and after.spec == before.spec
    assert after.env["LLMOE_HOME"] == str(layout.home)  # what the cluster sets is there
