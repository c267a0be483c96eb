"""router_labels on a machine of another kernel family than the cache's labels: relabels, and its one_kernel_family
check is a WARN naming both families (in the UI: the asset's checks; the run goes on)."""

from __future__ import annotations

import dagster as dg

from llmoe_pipeline.definitions import build_definitions
from llmoe_pipeline.defs.assets.tracking import router_tags
from llmoe_pipeline.defs.io_manager import load_asset_value
from llmoe_pipeline.router.model import scoring_model_id
from llmoe_pipeline_tests import fakes
from llmoe_pipeline_tests.defs.graph_support import slice_settings

LABELS = ["raw_prices", "raw_headlines", "feature_windows", "router_labels"]


class FamilySpec(fakes.FakeSpec):
    def __init__(self, family: str):
        self.model_id = scoring_model_id("fake-router@v1", "transformers", "bfloat16", "fixed2", kernels=family)

    def __call__(self) -> fakes.FakeBackend:
        backend = fakes.FakeBackend()
        backend.model_id = self.model_id
        return backend


class FamilyRouter(fakes.FakeRouterResource):
    family: str

    def backend_factory(self):
        return FamilySpec(self.family)


def label_aapl(settings, family: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    router = FamilyRouter(backend={"batch_size": 64}, home=str(settings.home), family=family)
    defs = build_definitions(settings, resources={"llm_router": router})
    job = defs.resolve_implicit_global_asset_job_def()
    selection = [dg.AssetKey(k) for k in LABELS]
    return job.execute_in_process(instance=instance, partition_key="AAPL", asset_selection=selection)


def kernel_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "one_kernel_family"]
    return check


def test_another_family_relabels_and_warns_naming_both(tmp_path, data_dir):
    settings, instance = slice_settings(tmp_path, data_dir), dg.DagsterInstance.ephemeral()
    first = label_aapl(settings, "amx-bf16", instance)
    assert kernel_check(first).passed and kernel_check(first).metadata["kernel_family"].value == "amx-bf16"

    fakes.SCORED.clear()
    second = label_aapl(settings, "avx512-bf16", instance)
    (labels,) = [e for e in second.get_asset_materialization_events() if e.asset_key == dg.AssetKey("router_labels")]
    rows = labels.materialization.metadata["rows"].value
    assert labels.materialization.metadata["labelled_now"].value == rows == len(fakes.SCORED) > 100  # relabelled
    check = kernel_check(second)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN and second.success
    assert check.metadata["other_kernel_families"].value == {"amx-bf16": rows}
    assert f"{rows} windows labelled with kernel family avx512-bf16" in str(check.description)
    assert f"labels of amx-bf16 for {rows} of them" in str(check.description)
    # The family is part of the labels' provenance: their model id, and the MLflow runs' tags.
    labels = load_asset_value(settings.home / "assets", ["router_labels"], "AAPL")
    assert router_tags(labels, 0.5)["router.kernel_family"] == "avx512-bf16"
    assert labels["model_id"].str.endswith("+kernels-avx512-bf16").all()
