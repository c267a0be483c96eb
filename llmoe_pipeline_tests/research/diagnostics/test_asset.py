"""The router_diagnostics asset materialized by Dagster on AAPL (inputs stubbed), with real MLflow on sqlite."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline.catalog import variant
from llmoe_pipeline.config.protocol import PipelineConfig
from llmoe_pipeline.config.settings import MLflowConfig
from llmoe_pipeline.defs.assets.diagnostics import PLOT_FILE, build_diagnostics_assets
from llmoe_pipeline.defs.io_manager import load_asset_value, store_asset_value
from llmoe_pipeline.defs.partitions import Partitions
from llmoe_pipeline.defs.resources import MLflowResource, ModelStoreResource, ProtocolResource
from llmoe_pipeline.features.windows import build_features
from llmoe_pipeline.models import LLMoESearch
from llmoe_pipeline.router.regimes import fit_threshold
from llmoe_pipeline.router.variants import RULE_SCORES
from llmoe_pipeline.tracking import CODE_VERSION_TAG

VARIANTS = [variant(n) for n in ("llm", "momentum", "random", "single", "oracle")]


class StubIO(dg.IOManager):
    """Inputs from a dict by asset key; outputs stored as the pipeline's IO manager stores them (Parquet/JSON)."""

    def __init__(self, values: dict, base: Path):
        self.values, self.base = values, base

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        store_asset_value(self.base, list(context.asset_key.path), context.partition_key, obj)

    def load_input(self, context: dg.InputContext):
        return self.values[context.asset_key.to_user_string()]


def _search(threshold: float) -> LLMoESearch:
    return LLMoESearch(threshold_quantile=0.5, threshold=threshold, params={}, table=pd.DataFrame())


def _llm_labels(windows: pd.DataFrame) -> pd.DataFrame:
    """A router_labels-like table: a noisy momentum score, explanations on test windows (every third: no side)."""
    rng = np.random.default_rng(0)
    score = 1 / (1 + np.exp(40 * windows["ma_5_lag0"].to_numpy() + rng.normal(0, 0.5, len(windows))))
    words = np.array(["The outlook is optimistic.", "The outlook is pessimistic.", "Microsoft named a CEO."])
    explanation = np.where(windows["split"] == "test", words[np.arange(len(windows)) % 3], None)
    return (
        windows[["ticker", "date", "split"]].assign(p_optimistic=score, explanation=explanation).reset_index(drop=True)
    )


@pytest.fixture(scope="module")
def inputs(aapl_msft_prices) -> dict:
    features = build_features(aapl_msft_prices[aapl_msft_prices["ticker"] == "AAPL"])
    windows = features[features["split"] != "none"].reset_index(drop=True)
    tables = {"router_labels": _llm_labels(windows)} | {
        f"routing_scores_{name}": fn(windows) for name, fn in RULE_SCORES.items()
    }
    values: dict = {"feature_windows": features, **tables}
    for v in VARIANTS:
        if v.experts:
            table = tables[v.routing_asset]
            values[f"llmoe_search/{v.name}"] = _search(v.fixed_threshold or fit_threshold(table, 0.5))
    return values


def _materialize(asset, values: dict, home: Path) -> dg.ExecuteInProcessResult:
    cfg = PipelineConfig.model_validate({"data": {"data_dir": str(home / "data")}})
    (home / "data").mkdir(parents=True, exist_ok=True)
    for name in ("prices.csv", "headlines.csv"):
        (home / "data" / name).write_text("date,ticker\n")
    resources = {
        "io_manager": dg.IOManagerDefinition.hardcoded_io_manager(StubIO(values, home / "assets")),
        "protocol": ProtocolResource(protocol=cfg.model_dump(mode="json")),
        "mlflow": MLflowResource(
            tracking=MLflowConfig().model_dump(mode="json", exclude={"tracking_uri"}), home=str(home)
        ),
        "model_store": ModelStoreResource(home=str(home)),
    }
    specs = [dg.AssetSpec(dg.AssetKey.from_user_string(key)) for key in values]
    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize([asset, *specs], resources=resources, partition_key="AAPL", instance=instance)


def test_asset_materializes_stores_a_table_and_reuses_its_mlflow_run(inputs, tmp_path, monkeypatch):
    # The shared checkout's git state changes while tests run: pin the code version the run's identity holds.
    from llmoe_pipeline.tracking import tracker

    pinned = tracker.provenance_tags() | {CODE_VERSION_TAG: "test-code-version"}
    monkeypatch.setattr(tracker, "provenance_tags", lambda: dict(pinned))
    (asset,) = build_diagnostics_assets(Partitions.for_tickers(["AAPL", "MSFT"]), VARIANTS)
    assert asset.key == dg.AssetKey("router_diagnostics")
    assert asset.group_names_by_key[asset.key] == "router"
    assert {k.to_user_string() for k in asset.dependency_keys} == set(inputs)  # no single, no experts

    home = tmp_path / "home"
    result = _materialize(asset, inputs, home)
    assert result.success
    summary = load_asset_value(home / "assets", ["router_diagnostics"], "AAPL")
    assert isinstance(summary, pd.DataFrame)
    s = summary.set_index(["variant", "split", "metric"])
    assert set(summary["variant"]) == {"llm", "momentum", "random", "oracle"}
    assert s.loc[("oracle", "test", "auc"), "value"] == 1.0 and s.loc[("oracle", "test", "auc"), "uses_future"]
    # The stub llm is a noisy momentum score: its AUC is close to momentum's, and it tracks ma_5 of day t.
    assert abs(s.loc[("llm", "test", "auc"), "value"] - s.loc[("momentum", "test", "auc"), "value"]) < 0.05
    assert s.loc[("llm", "test", "spearman:ma_5_lag0"), "value"] < -0.6
    assert s.loc[("llm", "test", "top_input"), "detail"] == "ma_5_lag0"
    share = s.loc[("llm", "test", "contradiction_share")]
    assert share["n"] == 502 and 0.2 < share["value"] < 0.5  # a third take no side; about half the rest contradict

    meta = result.asset_materializations_for_node(asset.op.name)[0].metadata
    assert {
        "auc",
        "hit_rate",
        "input_correlations",
        "agreement",
        "contradictions",
        "plot_optimistic_share",
        "optimistic_share_test_months",
    } <= set(meta)
    assert "oracle (uses the future)" in meta["auc"].value and "[" in meta["auc"].value
    assert meta["plot_optimistic_share"].value.startswith("![router_optimistic_share.png](data:image/png;base64,")
    assert meta["auc_test_random"].value == pytest.approx(s.loc[("random", "test", "auc"), "value"])
    assert (home / "artifacts" / "AAPL" / "plots" / PLOT_FILE).exists()

    # Re-materialized: the same MLflow run, finished, with the new values and the tables and plot as artifacts.
    assert _materialize(asset, inputs, home).success
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("llmoe")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`llmoe.role` = 'diagnostics'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "router-diagnostics-AAPL" and run.info.status == "FINISHED"
    assert run.data.tags["llmoe.ticker"] == "AAPL" and run.data.tags["llmoe.uses_future"] == "oracle"
    assert (
        run.data.tags["llmoe.config_hash"]
        == PipelineConfig.model_validate({"data": {"data_dir": str(home / "data")}}).config_hash()
    )
    assert run.data.metrics["auc_test_oracle"] == 1.0
    assert (
        run.data.metrics["auc_test_llm_ci_low"]
        < run.data.metrics["auc_test_llm"]
        < run.data.metrics["auc_test_llm_ci_high"]
    )
    assert run.data.params["bootstrap_reps"] == "1000"
    artifacts = {a.path for folder in ("tables", "plots") for a in client.list_artifacts(run.info.run_id, folder)}
    assert {
        "tables/summary.csv",
        "tables/agreement.csv",
        "tables/contradictions.csv",
        f"plots/{PLOT_FILE}",
    } <= artifacts
    assert meta["mlflow_run"].value.endswith(run.info.run_id)
