"""The asset graph end to end with a deterministic fake router (fast; the real router runs in router/ and e2e/):
every asset of a ticker through the three jobs, regime partitions, reuse on a second refresh, the chain sensor."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline.app.runner import materializations, refresh_ticker
from llmoe_pipeline.catalog import REFRESH_CHAIN_TAG as CHAIN_TAG
from llmoe_pipeline.defs.io_manager import load_asset_value
from llmoe_pipeline.defs.schedules import next_step_requests
from llmoe_pipeline.models import ModelSet
from llmoe_pipeline.trading.signals import read_history
from llmoe_pipeline_tests import fakes
from llmoe_pipeline_tests.defs.graph_support import fake_definitions, slice_settings
from llmoe_pipeline_tests.model_fixtures import ALL_MODELS

MODELS = [
    "baseline_models/moe",
    "baseline_models/lstm",
    "baseline_models/mlp",
    "baseline_models/lightgbm",
    "llmoe_search/llm",
    "expert_models/llm[optimistic]",
    "expert_models/llm[pessimistic]",
]


@pytest.fixture(scope="module")
def graph(tmp_path_factory, data_dir):
    settings = slice_settings(tmp_path_factory.mktemp("graph"), data_dir)
    return settings, fake_definitions(settings), dg.DagsterInstance.ephemeral()


@pytest.fixture(scope="module")
def first_refresh(graph):
    settings, defs, instance = graph
    fakes.SCORED.clear()
    fakes.EXPLAINED.clear()
    return materializations(refresh_ticker(defs, "AAPL", instance))


def test_one_refresh_materializes_every_asset_of_the_ticker(graph, first_refresh):
    settings, defs, instance = graph
    every = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    experts = {k for k in every if k.startswith("expert_models/")}
    assert experts == {
        f"expert_models/{v}" for v in ("llm", "momentum", "random", "oracle", "llm_probe", "features_probe")
    }
    expected = (every - experts) | {f"{k}[{r}]" for k in experts for r in ("optimistic", "pessimistic")}
    assert set(first_refresh) == expected
    labels = first_refresh["router_labels"]
    # Every window scored once by router_labels; router_explanations' scoring pass sees only the ones it explains.
    assert labels["labelled_now"] == labels["rows"] == len(fakes.SCORED) - len(fakes.EXPLAINED) > 150
    assert all(first_refresh[k]["reused_from_cache"] is False for k in MODELS)


def test_labels_come_first_and_the_explanations_step_explains_after_the_results(graph, first_refresh):
    settings, defs, instance = graph
    labels, explained = first_refresh["router_labels"], first_refresh["router_explanations"]
    # router_labels scored every window and explained none (a cold cache: nothing to show yet).
    assert labels["explained_per_split"] == {
        split: {"windows": counts["windows"], "explained": 0} for split, counts in labels["explained_per_split"].items()
    }
    assert set(settings.protocol.router.explain_splits) == {"test", "live"}
    splits = labels["explained_per_split"]
    wanted = splits["test"]["windows"] + splits["live"]["windows"]
    # router_explanations explained exactly the test and live windows, each once (the fake counts explain calls).
    assert explained["rows"] == explained["explained_now"] == len(fakes.EXPLAINED) == wanted > 10
    assert explained["explained_per_split"] == {
        "test": {"windows": splits["test"]["windows"], "explained": splits["test"]["windows"]},
        "live": {"windows": 1, "explained": 1},
    }
    table = load_asset_value(settings.home / "assets", ["router_explanations"], "AAPL")
    assert list(table.columns) == ["ticker", "date", "split", "explanation", "explained_now"]
    assert table["explanation"].str.startswith("fake explanation").all()
    # The explanations ran in their own run, after the evaluation run (the verdict and the signal) had finished.
    runs = {r.job_name: r for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": "AAPL"}))}
    last = instance.get_run_record_by_id(runs["explanations_job"].run_id)
    evaluation = instance.get_run_record_by_id(runs["evaluation_job"].run_id)
    assert last is not None and evaluation is not None and evaluation.end_time <= last.start_time
    # The live signal was recorded without an explanation, then got the live window's filled in.
    signal = defs.load_asset_value("trading_signals", partition_key="AAPL", instance=instance)
    assert len(signal) == 1 and signal["explanation"].iloc[0] == ""
    live = table[table["split"] == "live"].iloc[0]
    history = read_history(settings.home / "signals", ["AAPL"])
    assert history["as_of"].iloc[0] == live["date"].date()
    assert history["explanation"].iloc[0] == live["explanation"] != ""
    assert history["position"].iloc[0] == signal["position"].iloc[0]


def test_nothing_of_the_results_depends_on_the_explanations(graph):
    settings, defs, instance = graph
    asset_graph = defs.resolve_asset_graph()
    explanations = dg.AssetKey("router_explanations")
    assert asset_graph.get(explanations).child_keys == set()  # upstream of nothing
    assert dg.AssetKey("router_labels") in asset_graph.get(explanations).parent_keys
    for key in ("significance", "trading_signals", "backtest_results", "llmoe_search/llm", "router_diagnostics"):
        upstream = dg.AssetSelection.assets(dg.AssetKey.from_user_string(key)).upstream().resolve(asset_graph)
        assert dg.AssetKey("router_labels") in upstream and explanations not in upstream, key
    # Only the last job of a refresh runs them; the other three never do.
    for name in ("llmoe_job", "experts_job", "evaluation_job"):
        assert explanations not in defs.resolve_job_def(name).asset_layer.selected_asset_keys, name
    assert defs.resolve_job_def("explanations_job").asset_layer.selected_asset_keys == {explanations}


def test_experts_are_partitioned_by_ticker_and_regime(graph, first_refresh):
    settings, defs, instance = graph
    keys = instance.get_materialized_partitions(dg.AssetKey(["expert_models", "llm"]))
    assert keys == {"optimistic|AAPL", "pessimistic|AAPL"}
    base = settings.home / "assets"
    optimistic = load_asset_value(base, ["expert_models", "llm"], "optimistic|AAPL")
    search = load_asset_value(base, ["llmoe_search", "llm"], "AAPL")
    assert isinstance(optimistic, ModelSet) and optimistic.seeds == settings.protocol.seeds
    assert optimistic.name == "llmoe_expert_optimistic"
    assert optimistic.params == search.expert_params("Optimistic")
    labels = load_asset_value(base, ["router_labels"], "AAPL")
    routed = labels.assign(label=np.where(labels["p_optimistic"] > search.threshold, "Optimistic", "Pessimistic"))
    train_dates = set(routed.loc[(routed["split"] == "train") & (routed["label"] == "Optimistic"), "date"])
    features = load_asset_value(base, ["feature_windows"], "AAPL")
    used = features.loc[optimistic.models[0].train_rows, "date"]
    assert set(used) == train_dates  # the expert saw exactly the training days routed to its regime


def test_predictions_and_results_cover_every_model_and_seed(graph, first_refresh):
    settings, defs, instance = graph
    results = defs.load_asset_value("backtest_results", partition_key="AAPL", instance=instance)
    seeds = results.groupby("model")["seed"].nunique().to_dict()
    assert seeds == {**dict.fromkeys(ALL_MODELS, 2), "Buy&Hold": 1}  # every variant, its soft routing, baselines
    urls = defs.load_asset_value("mlflow_runs", partition_key="AAPL", instance=instance)
    assert set(urls) == set(seeds) and all(u.startswith("http://127.0.0.1:5000/#/experiments/") for u in urls.values())
    preds = defs.load_asset_value("predictions", partition_key="AAPL", instance=instance)
    assert set(preds.loc[preds["model"] == "LLMoE", "regime"]) == {"Optimistic", "Pessimistic"}


def test_second_refresh_labels_nothing_and_reuses_every_model(graph, first_refresh):
    settings, defs, instance = graph
    fakes.SCORED.clear()
    fakes.EXPLAINED.clear()
    again = materializations(refresh_ticker(defs, "AAPL", instance))
    assert fakes.SCORED == [] and again["router_labels"]["labelled_now"] == 0
    # The explanations are cached too: none generated, and router_labels now shows the cached ones.
    assert fakes.EXPLAINED == [] and again["router_explanations"]["explained_now"] == 0
    assert again["router_explanations"]["from_cache"] == first_refresh["router_explanations"]["rows"]
    shown = again["router_labels"]["explained_per_split"]
    assert {k: shown[k] for k in ("test", "live")} == first_refresh["router_explanations"]["explained_per_split"]
    assert shown["train"]["explained"] == shown["validation"]["explained"] == 0
    labels = load_asset_value(settings.home / "assets", ["router_labels"], "AAPL")
    assert labels["explanation"].notna().sum() == first_refresh["router_explanations"]["rows"]
    for key in MODELS:
        assert again[key]["reused_from_cache"] is True, key
        assert again[key]["fingerprint"] == first_refresh[key]["fingerprint"], key
    results = defs.load_asset_value("backtest_results", partition_key="AAPL", instance=instance)
    assert len(results) == first_refresh["backtest_results"]["rows"]


def test_chain_sensor_continues_a_refresh_step_by_step(graph, first_refresh):
    settings, defs, instance = graph
    runs = {r.job_name: r for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": "AAPL"}))}
    first = runs["llmoe_job"]
    experts = next_step_requests(first, instance)
    assert [(r.job_name, r.partition_key) for r in experts] == [
        ("experts_job", "optimistic|AAPL"),
        ("experts_job", "pessimistic|AAPL"),
    ]
    assert {r.tags[CHAIN_TAG] for r in experts} == {first.run_id}
    # The evaluation waits until every regime of the chain has succeeded.
    chain = {CHAIN_TAG: "chain-1"}
    done = [
        defs.resolve_job_def("experts_job")
        .execute_in_process(partition_key=r.partition_key, instance=instance, tags=chain)
        .dagster_run
        for r in experts
    ]
    assert next_step_requests(done[0], instance)[0].job_name == "evaluation_job"  # both have finished by now
    assert next_step_requests(done[1], instance)[0].run_key == "chain-1-evaluation"  # one request per chain
    lone = instance.get_runs(filters=dg.RunsFilter(job_name="experts_job", tags=chain), limit=1)[0]
    instance.delete_run(done[0].run_id if lone.run_id == done[1].run_id else done[1].run_id)
    assert next_step_requests(lone, instance) == []
    last = next_step_requests(runs["evaluation_job"], instance)
    assert [(r.job_name, r.partition_key) for r in last] == [("explanations_job", "AAPL")]
    assert (
        last[0].run_key == f"{runs['evaluation_job'].tags.get(CHAIN_TAG, runs['evaluation_job'].run_id)}-explanations"
    )
    assert next_step_requests(runs["explanations_job"], instance) == []


def test_adding_a_baseline_is_one_registry_entry_and_its_fit_function(tmp_path, data_dir, monkeypatch):
    """The README's "Extending it" example, verbatim: a logistic regression becomes an asset, a row of every
    table (after the other baselines, before buy-and-hold) and an MLflow parent, with nothing else touched."""
    from llmoe_pipeline.models import registry
    from llmoe_pipeline.models.common import fit_network_model, split_mask
    from llmoe_pipeline.models.nets import FeedForwardNet
    from llmoe_pipeline.reporting.tables import summarize

    def fit_logreg(features, params, seed):
        return fit_network_model(
            "logreg",
            lambda n: FeedForwardNet(n, [], 0.0),
            features,
            split_mask(features, "train"),
            split_mask(features, "validation"),
            params,
            seed,
        )

    logreg = registry.ModelSpec(
        "logreg",
        "LogReg",
        "pytorch",
        fit_logreg,
        {"learning_rate": [1e-3, 1e-2]},
        registry.network_settings,
        "Logistic regression on the 55 inputs.",
    )
    monkeypatch.setattr(registry, "BASELINES", (*registry.BASELINES, logreg))
    settings = slice_settings(tmp_path, data_dir)
    router = settings.protocol.router.model_copy(update={"variants": ["llm"]})  # the paper's LLMoE only: faster
    settings = settings.model_copy(update={"protocol": settings.protocol.model_copy(update={"router": router})})
    defs = fake_definitions(settings)
    done = materializations(refresh_ticker(defs, "AAPL", dg.DagsterInstance.ephemeral()))
    assert done["baseline_models/logreg"]["seeds"] == 2
    results = load_asset_value(settings.home / "assets", ["backtest_results"], "AAPL")
    order = summarize(results).query("split == 'test' and cost_bps == 0")["model"].tolist()
    assert order == ["LLMoE", "LLMoE-soft", "MoE", "LSTM", "MLP", "LightGBM", "LogReg", "Buy&Hold"]
    urls = load_asset_value(settings.home / "assets", ["mlflow_runs"], "AAPL")
    assert "LogReg" in urls


def test_significance_compares_every_llmoe_variant_with_every_model(graph, first_refresh):
    settings, defs, instance = graph
    value = defs.load_asset_value("significance", partition_key="AAPL", instance=instance)
    pairs = pd.DataFrame(value["test"]["pairs"])
    llmoe = pairs[pairs["model_a"] == "LLMoE"]
    assert set(llmoe["model_b"]) == ALL_MODELS - {"LLMoE"}
    assert pairs.loc[pairs["model_b"] == "LLMoE[oracle]", "uses_future"].all()
    mcs = pd.DataFrame(value["test"]["mcs"]).set_index("model")
    assert pd.isna(mcs.loc["LLMoE[oracle]", "in_mcs"])  # the oracle never competes in the confidence set
    diagnostics = defs.load_asset_value("router_diagnostics", partition_key="AAPL", instance=instance)
    auc = diagnostics[(diagnostics["metric"] == "auc") & (diagnostics["split"] == "test")].set_index("variant")
    assert auc.loc["oracle", "value"] == 1.0
    assert set(auc.index) == {"llm", "momentum", "random", "oracle", "llm_probe", "features_probe"}
    # What the tests could have seen, and the selection the reported LLMoE went through: every grid configuration
    # of the variants that do not use the future, counted from their searches.
    assert {"mde", "power_at_gap", "ruled_out_above", "power_curve"} <= set(pairs.columns)
    (selection,) = value["test"]["selection"]
    searched = {
        name: defs.load_asset_value(["llmoe_search", v], partition_key="AAPL", instance=instance)
        for name, v in (
            ("LLMoE", "llm"),
            ("LLMoE[momentum]", "momentum"),
            ("LLMoE[random]", "random"),
            ("LLMoE[llm_probe]", "llm_probe"),
            ("LLMoE[features_probe]", "features_probe"),
        )
    }
    counts = {name: s.configurations.shape[1] - 1 for name, s in searched.items()}
    assert selection["configurations_per_variant"] == counts
    assert counts["LLMoE"] == int((~searched["LLMoE"].table["skipped"]).sum()) and counts["LLMoE[random]"] == 1
    assert selection["deflated"]["n_trials"] == sum(counts.values())
    record = pd.DataFrame(value["test"]["track_record"])
    assert sorted(set(record["against"])) == ["Buy&Hold", "zero"] and "LLMoE[oracle]" in set(record["model"])
    # The UI shows the same in plain words (no power here: 19 test days are too few for the Sharpe test).
    event = instance.get_latest_materialization_event(dg.AssetKey("significance"))
    verdict = event.asset_materialization.metadata["verdict"].value
    assert f"one of {sum(counts.values())} grid configurations tried" in verdict and "(19 days: too few" in verdict


def test_walk_forward_is_an_asset_when_enabled_and_feeds_the_verdict(tmp_path, data_dir):
    from llmoe_pipeline.defs.results import StoredResults
    from llmoe_pipeline.research.verdict import verdict_text

    settings = slice_settings(tmp_path, data_dir)
    protocol = settings.protocol.model_copy(
        update={
            "walk_forward": settings.protocol.walk_forward.model_copy(
                update={"enabled": True, "first_year": 2013, "last_year": 2013}
            ),
            "router": settings.protocol.router.model_copy(update={"variants": ["llm", "random"]}),
        }
    )
    settings = settings.model_copy(update={"protocol": protocol})
    defs = fake_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    done = materializations(refresh_ticker(defs, "AAPL", instance))
    assert "walk_forward_returns" in done and done["walk_forward_returns"]["years"] == [2013]
    walk = defs.load_asset_value("walk_forward_returns", partition_key="AAPL", instance=instance)
    assert walk["date"].min() >= pd.Timestamp("2013-01-01") and set(walk["year"]) == {2013}
    value = defs.load_asset_value("significance", partition_key="AAPL", instance=instance)
    assert set(value) == {"test", "walk_forward"}
    evidence = StoredResults.of(settings, instance).evidence("AAPL")
    assert list(evidence.yearly.columns) == [2013]
    assert "Walk-forward (1 years): LLMoE Sharpe" in verdict_text(evidence)
