"""trading_signals: tomorrow's decision per ticker (llmoe_pipeline/trading/signals.py), appended to the signal history
under the home, shown as metadata and logged to MLflow (experiment `llmoe-live`, one run per ticker and day)."""

import datetime as dt
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from llmoe_pipeline.catalog import RouterVariant
from llmoe_pipeline.core.hashing import sha256_json
from llmoe_pipeline.defs.assets.evaluation import plain_models, routed_labels
from llmoe_pipeline.defs.checks import OWNERS
from llmoe_pipeline.defs.partitions import Partitions, split_expert_partition_key
from llmoe_pipeline.defs.progress import progress_log
from llmoe_pipeline.defs.resources import MLflowResource, ModelStoreResource, ProtocolResource
from llmoe_pipeline.models import registry
from llmoe_pipeline.tracking.provenance import data_files_hash
from llmoe_pipeline.tracking.tags import CONFIG_HASH_TAG, ROLE_TAG, TICKER_TAG
from llmoe_pipeline.trading.retraining import effective_split
from llmoe_pipeline.trading.signals import append_signals, compute_signals, days_to_signal, recorded_days, signals_json

LIVE_EXPERIMENT = "llmoe-live"
AS_OF_TAG = "llmoe.as_of"


def log_signal_runs(mlflow: MLflowResource, signals: pd.DataFrame, config_hash: str) -> list[str]:
    """One MLflow run per (ticker, day) in `llmoe-live`, reused when the same day is logged again."""
    tracker = mlflow.tracker(LIVE_EXPERIMENT)
    urls = []
    for _, s in signals.iterrows():
        identity = {
            TICKER_TAG: s["ticker"],
            ROLE_TAG: "signal",
            CONFIG_HASH_TAG: config_hash,
            AS_OF_TAG: str(s["as_of"]),
        }
        run_id = tracker.identified_run(
            identity,
            run_name=f"{s['ticker']}-{s['as_of']}",
            params={"trained_through": str(s["trained_through"])},
            tags={"llmoe.regime": s["regime"]},
        )
        with tracker.failed_on_error(run_id), tempfile.TemporaryDirectory(prefix="llmoe-signal-") as tmp:
            from mlflow.entities import Metric

            now = int(dt.datetime.now().timestamp() * 1000)
            metrics = {k: float(s[k]) for k in ("position", "p_optimistic", "prob_up", "prob_up_std")}
            tracker.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
            path = Path(tmp) / "signal.csv"
            pd.DataFrame([s]).to_csv(path, index=False)
            tracker.client.log_artifact(run_id, str(path))
            tracker.client.set_terminated(run_id, "FINISHED")
        urls.append(tracker.run_url(run_id))
    return urls


def build_signal_assets(partitions: Partitions, variants: list[RouterVariant]) -> list:
    llm = next(v for v in variants if v.name == "llm")

    @dg.asset(
        partitions_def=partitions.tickers,
        group_name="signals",
        kinds={"parquet", "mlflow"},
        owners=OWNERS,
        ins={
            "feature_windows": dg.AssetIn(),
            "raw_prices": dg.AssetIn(),
            "routing__llm": dg.AssetIn(llm.routing_asset),
            "search__llm": dg.AssetIn(["llmoe_search", "llm"]),
            "experts__llm": dg.AssetIn(["expert_models", "llm"]),
            **{f"baseline__{s.name}": dg.AssetIn(["baseline_models", s.name]) for s in registry.BASELINES},
        },
    )
    def trading_signals(
        context: dg.AssetExecutionContext,
        protocol: ProtocolResource,
        mlflow: MLflowResource,
        model_store: ModelStoreResource,
        feature_windows: pd.DataFrame,
        raw_prices: pd.DataFrame,
        **values,
    ) -> dg.Output:
        """The position for the next session: the LLM router's regime, p_optimistic and explanation, the routed
        expert's P(up) over seeds, every baseline's position, and the models that produced it. Appended (once per
        day, atomically) to the signal history; a night that failed is filled in by the next one.

        The explanation is the one router_labels found in the label cache: the signal never waits for one (it does
        not depend on router_explanations, which runs after the results and fills the day's explanation into the
        recorded signal, `signals.fill_explanations`)."""
        cfg, ticker = protocol.config, context.partition_key
        folder = model_store.signals_dir()
        rows = days_to_signal(feature_windows, recorded_days(folder, ticker))
        experts = {split_expert_partition_key(pk)[1]: ms for pk, ms in values["experts__llm"].items()}
        model_ids = {ms.name: sha256_json(dict(ms.params))[:12] for ms in experts.values()}
        signals = compute_signals(
            rows,
            routed_labels(values, llm),
            {r: ms.models for r, ms in experts.items()},
            {name: ms.models for name, ms in plain_models(values, []).items()},
            effective_split(cfg, raw_prices["date"].max().date()).train_end,
            values["search__llm"].threshold,
            model_ids | {"data": data_files_hash(cfg.data.price_paths() + cfg.data.headline_paths())},
            dt.datetime.now(dt.timezone.utc),
        )
        written = append_signals(folder, signals)
        urls = log_signal_runs(mlflow, signals, cfg.config_hash()) if len(signals) else []
        latest = signals_json(signals.tail(1))
        progress_log(
            context,
            f"{len(written)} new signal(s); "
            + (
                f"latest: {latest[0]['as_of']} {'LONG' if latest[0]['position'] else 'CASH'} "
                f"({latest[0]['regime']}, P(up) {latest[0]['prob_up']:.3f})"
                if latest
                else "the signal history already covers every day"
            ),
        )
        return dg.Output(
            signals,
            metadata={
                "new_signals": len(written),
                "latest_signal": dg.MetadataValue.json(latest[0] if latest else {}),
                "history_folder": dg.MetadataValue.path(str(folder / ticker)),
                **({"mlflow_run": dg.MetadataValue.url(urls[-1])} if urls else {}),
            },
        )

    return [trading_signals]
