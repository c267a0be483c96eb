"""router_labels: the LLM reads each 5-day window and routes it Optimistic/Pessimistic (llmoe_pipeline/router/)."""

import time

import dagster as dg
import pandas as pd

from llmoe_pipeline.data import daily_news
from llmoe_pipeline.defs.checks import OWNERS, checks_then_output
from llmoe_pipeline.defs.partitions import Partitions
from llmoe_pipeline.defs.progress import progress_log
from llmoe_pipeline.defs.resources import LLMRouterResource, ProtocolResource
from llmoe_pipeline.regimes import MIN_ROWS_PER_REGIME, apply_threshold, fit_threshold, regime_counts, too_few_windows
from llmoe_pipeline.router.labels import label_windows
from llmoe_pipeline.router.prompt import PROMPT_VERSION, build_prompts


def build_router_assets(partitions: Partitions) -> list:
    @dg.asset(
        partitions_def=partitions.tickers,
        group_name="router",
        kinds={"vllm", "parquet"},
        owners=OWNERS,
        pool="llm",  # one language model in memory at a time (dagster.yaml: pools default_limit 1)
        retry_policy=dg.RetryPolicy(max_retries=2, delay=15, backoff=dg.Backoff.EXPONENTIAL),
        code_version=PROMPT_VERSION,
        check_specs=[
            dg.AssetCheckSpec(
                "both_regimes_trainable",
                asset="router_labels",
                blocking=True,
                description="each regime has enough train and validation windows for an expert",
            )
        ],
    )
    def router_labels(
        context: dg.AssetExecutionContext,
        protocol: ProtocolResource,
        llm_router: LLMRouterResource,
        feature_windows: pd.DataFrame,
        raw_prices: pd.DataFrame,
        raw_headlines: pd.DataFrame,
    ):
        """Optimistic/Pessimistic per window, with p_optimistic, an explanation, model id and prompt hash.

        Cached by content: only windows whose (model, prompt version, prompt text) is new reach the model.
        The threshold on p_optimistic is fitted on the training windows only.
        """
        cfg = protocol.config
        windows = feature_windows[feature_windows["split"] != "none"]
        prompts = build_prompts(
            windows,
            daily_news(raw_headlines, raw_prices),
            window=cfg.window,
            max_news_chars=cfg.router.max_news_chars,
            max_headline_chars=cfg.router.max_headline_chars,
        )
        explain = prompts["split"].isin(cfg.router.explain_splits).to_numpy()
        started, last_log = time.time(), [0.0]

        def progress(done: int, total: int, rate: float) -> None:
            if time.time() - last_log[0] > 10 or done == total:
                last_log[0] = time.time()
                progress_log(context, f"router: {done}/{total} windows labelled ({rate:.1f} prompts/s)")

        with llm_router.cache() as cache:
            labels = label_windows(
                prompts,
                llm_router.backend_factory(),
                cache,
                explain_mask=explain,
                batch_size=llm_router.config.batch_size,
                progress=progress,
            )
        threshold = fit_threshold(labels, cfg.router.threshold_quantile)
        labels = apply_threshold(labels, threshold)
        counts = regime_counts(labels)
        n_new = int((~labels["from_cache"]).sum())
        sample = labels[labels["explanation"].fillna("") != ""].tail(5)
        metadata = {
            "rows": len(labels),
            "labelled_now": n_new,
            "from_cache": len(labels) - n_new,
            "seconds": round(time.time() - started, 1),
            "threshold": float(threshold),
            "model_id": str(labels["model_id"].iloc[0]),
            "prompt_version": PROMPT_VERSION,
            "label_balance": dg.MetadataValue.json(counts),
            "p_optimistic_mean": float(labels["p_optimistic"].mean()),
            "example_prompt": dg.MetadataValue.md(f"```\n{prompts['prompt'].iloc[-1]}\n```"),
            "recent_explanations": dg.MetadataValue.md(
                sample[["date", "label", "p_optimistic", "explanation"]].astype(str).to_markdown(index=False)
                if len(sample)
                else "(none)"
            ),
        }
        short = too_few_windows(counts)
        yield from checks_then_output(
            labels,
            [
                dg.AssetCheckResult(
                    check_name="both_regimes_trainable",
                    passed=not short,
                    metadata={
                        "too_few": dg.MetadataValue.json(short),
                        "needed": dg.MetadataValue.json(MIN_ROWS_PER_REGIME),
                    },
                )
            ],
            metadata=metadata,
        )

    return [router_labels]
