"""A run waiting for the language model waits in the run queue (no process), not in its run spinning a core: the
runs of the one job with language-model steps carry a tag that dagster.yaml limits to one run at a time."""

from __future__ import annotations

import shutil

import dagster as dg

from llmoe_pipeline.defs.jobs import LLM_RUN_TAG
from llmoe_pipeline.paths import REPO_ROOT
from llmoe_pipeline_tests.defs.graph_support import fake_definitions, slice_settings


def test_only_the_job_with_language_model_steps_carries_the_tag(tmp_path, data_dir):
    defs = fake_definitions(slice_settings(tmp_path, data_dir))
    router = dg.AssetKey("router_labels")
    for name in ("llmoe_job", "experts_job", "evaluation_job"):
        job = defs.resolve_job_def(name)
        has_llm_steps = router in job.asset_layer.selected_asset_keys
        assert (LLM_RUN_TAG in job.tags) == has_llm_steps == (name == "llmoe_job"), name


def test_the_project_instance_queues_a_second_llm_run(tmp_path):
    shutil.copyfile(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:  # as `llmoe ui` starts it (DAGSTER_HOME)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 2
        assert queue.tag_concurrency_limits == [{"key": LLM_RUN_TAG, "limit": 1}]
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1  # the pool stays
