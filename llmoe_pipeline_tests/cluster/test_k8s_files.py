"""The Kubernetes files are checked without a cluster (no helm binary is installable here: not in Debian, not on
PyPI): the Dockerfile parses with Docker's own parser (buildkit's, through the `dockerfile` package) and copies
files that exist; the Helm values name the chart's keys for a code location, an external PostgreSQL, the
K8sRunLauncher and the queued run coordinator, and point at a module and attribute that load; the Celery worker
manifest runs the app module the local workers run; the instance and pipeline configs load."""

from __future__ import annotations

import shlex

import pytest
import yaml

from llmoe_pipeline.core.paths import REPO_ROOT

K8S = REPO_ROOT / "deploy" / "cluster" / "k8s"


def test_dockerfile_parses_and_copies_what_exists():
    dockerfile = pytest.importorskip("dockerfile")
    commands = dockerfile.parse_file(str(K8S / "Dockerfile"))
    assert commands[0].cmd.upper() == "FROM" and commands[0].value[0].startswith("python:3.11")
    for copy in (c for c in commands if c.cmd.upper() == "COPY"):
        for source in copy.value[:-1]:
            assert (REPO_ROOT / source).exists(), source
    cmd = next(c for c in commands if c.cmd.upper() == "CMD")
    assert cmd.json and list(cmd.value[:3]) == ["dagster", "code-server", "start"]
    assert "llmoe_pipeline.definitions" in cmd.value and "defs" in cmd.value
    installs = " ".join(" ".join(c.value) for c in commands if c.cmd.upper() == "RUN")
    assert ".[cluster]" in installs and "dagster-k8s==0.29.27" in installs  # the dagster family's libraries


def test_helm_values_use_the_charts_keys_and_a_loadable_code_location():
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert {"name", "image", "port"} <= set(deployment)  # required by the chart's UserDeployment schema
    args = deployment["dagsterApiGrpcArgs"]
    module, attribute = args[args.index("-m") + 1], args[args.index("-a") + 1]
    assert (module, attribute) == ("llmoe_pipeline.definitions", "defs")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert set(values["runLauncher"]["config"]["k8sRunLauncher"]) <= {
        "jobNamespace",
        "envVars",
        "envSecrets",
        "envConfigMaps",
        "volumes",
        "volumeMounts",
        "runK8sConfig",
        "imagePullPolicy",
        "loadInclusterConfig",
        "labels",
        "resources",
        "securityContext",
        "schedulerName",
        "failPodOnRunFailure",
        "image",
        "kubeconfigFile",
    }  # K8sRunLauncherConfig's properties (additionalProperties: false in the chart's schema)
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator" and coordinator["enabled"]
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlHost"]
    assert values["computeLogManager"]["type"] in {"S3ComputeLogManager", "GCSComputeLogManager"}
    env = {e["name"] for e in deployment["env"]}
    assert {"LLMOE_CONFIG", "LLMOE_CELERY_BROKER_URL"} <= env
    assert all("value" not in e or "password" not in e["value"].lower() for e in deployment["env"])


def test_celery_worker_manifest_runs_the_local_workers_app():
    docs = list(yaml.safe_load_all((K8S / "celery-workers.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Deployment"]
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[:3] == ["celery", "-A", "llmoe_pipeline.cluster.celery_app"] and "-c" in command
    assert docs[0]["spec"]["replicas"] >= 2
    local = shlex.join(command)
    assert "--prefetch-multiplier=1" in local  # one step per worker at a time: a lost worker strands only that one


def test_cluster_pipeline_config_and_instances_load():
    from dagster._core.instance.config import dagster_instance_config

    from llmoe_pipeline.config.settings import load_settings

    settings = load_settings(REPO_ROOT / "deploy" / "cluster" / "config.yaml")
    assert settings.executor.kind == "celery" and settings.storage.shared_url.startswith("s3://")
    assert settings.storage.label_cache_url.startswith("postgresql://")
    local, _ = dagster_instance_config(str(REPO_ROOT / "deploy" / "cluster" / "local"), "dagster.yaml")
    assert local["run_coordinator"]["class"] == "QueuedRunCoordinator" and "postgres" in local["storage"]
    slice_settings = load_settings(REPO_ROOT / "deploy" / "cluster" / "local" / "slice.yaml")
    assert slice_settings.tickers == ("AAPL", "MSFT") and slice_settings.protocol.seeds == [0, 1]
