"""A run waiting for the language model waits in the run queue (no process), not in its run spinning a core: the
runs of the jobs with language-model steps (labels, explanations) carry a tag that dagster.yaml limits to one run at
a time."""

from __future__ import annotations

import shutil

import dagster as dg

from llmoe_pipeline.core.paths import REPO_ROOT
from llmoe_pipeline.defs.jobs import LLM_RUN_TAG
from llmoe_pipeline_tests.defs.graph_support import fake_definitions, slice_settings


def test_only_the_job_with_language_model_steps_carries_the_tag(tmp_path, data_dir):
    defs = fake_definitions(slice_settings(tmp_path, data_dir))
    llm_assets = {dg.AssetKey("router_labels"), dg.AssetKey("router_explanations")}
    for name in ("llmoe_job", "experts_job", "evaluation_job", "explanations_job"):
        job = defs.resolve_job_def(name)
        has_llm_steps = bool(llm_assets & job.asset_layer.selected_asset_keys)
        assert (LLM_RUN_TAG in job.tags) == has_llm_steps == (name in ("llmoe_job", "explanations_job")), name


def test_the_project_instance_queues_a_second_llm_run(tmp_path):
    shutil.copyfile(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:  # as `llmoe ui` starts it (DAGSTER_HOME)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 2
        assert queue.tag_concurrency_limits == [{"key": LLM_RUN_TAG, "limit": 1}]
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1  # the pool stays


def test_the_queue_holds_a_second_llm_run_and_lets_other_runs_go(tmp_path):
    """The run queue's own choice (the daemon's dequeue step, without launching anything): while one llmoe_job run
    is in progress, another waits queued; a run of another job goes ahead."""
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.test_utils import create_run_for_test
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    location = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("llmoe_pipeline.definitions"), "__repository__")

    def run(instance, job: str, status: dg.DagsterRunStatus, tags: dict | None = None) -> dg.DagsterRun:
        origin = RemoteJobOrigin(location, job)
        return create_run_for_test(instance, job, status=status, tags=tags, remote_job_origin=origin)

    shutil.copyfile(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        llm = {LLM_RUN_TAG: "router"}
        run(instance, "llmoe_job", dg.DagsterRunStatus.STARTED, llm)
        run(instance, "llmoe_job", dg.DagsterRunStatus.QUEUED, llm)  # another ticker's: must wait
        experts = run(instance, "experts_job", dg.DagsterRunStatus.QUEUED)
        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
        chosen = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
        assert [r.run_id for r in chosen] == [experts.run_id]  # the second llmoe_job run stays queued: no process
