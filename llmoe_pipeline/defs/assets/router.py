"""Routing: the LLM reads each 5-day window and scores it Optimistic/Pessimistic (router_labels; router/),
the LLM ablations that see part of the prompt, and the rule routers' scores (router/variants.py)."""

import time

import dagster as dg
import pandas as pd

from llmoe_pipeline.catalog import HIDDEN_STATES_NEED_TRANSFORMERS, RouterVariant
from llmoe_pipeline.defs.assets.scores import probe_router_asset, rule_router_asset
from llmoe_pipeline.defs.checks import OWNERS, checks_then_output, retry_only
from llmoe_pipeline.defs.jobs import EXPLANATIONS_TAG
from llmoe_pipeline.defs.partitions import Partitions
from llmoe_pipeline.defs.progress import progress_log
from llmoe_pipeline.defs.resources import LLMRouterResource, ModelStoreResource, ProtocolResource
from llmoe_pipeline.router.backends.openai import ServerUnavailableError
from llmoe_pipeline.router.families import kernel_family_warning, other_kernel_families, shown_kernel_family
from llmoe_pipeline.router.labels import explain_windows, label_windows
from llmoe_pipeline.router.prompt import configured_prompts, prompt_version
from llmoe_pipeline.router.regimes import (
    MIN_ROWS_PER_REGIME,
    apply_threshold,
    fit_threshold,
    regime_counts,
    too_few_windows,
)
from llmoe_pipeline.trading.signals import fill_explanations

RETRY_DELAY_S = 5  # a router server that is restarting answers again within seconds


def progress_every_10s(context: dg.AssetExecutionContext, verb: str):
    """A progress callback for label_windows/explain_windows: a line in the run's log at most every 10 s."""
    last_log = [0.0]

    def progress(done: int, total: int, rate: float) -> None:
        if time.time() - last_log[0] > 10 or done == total:
            last_log[0] = time.time()
            progress_log(context, f"router: {done}/{total} windows {verb} ({rate:.2f} prompts/s)")

    return progress


def _trainable_check(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "both_regimes_trainable",
        asset=asset,
        blocking=True,
        description="each regime has enough train and validation windows for an expert",
    )


def _regime_checks(labels: pd.DataFrame) -> list[dg.AssetCheckResult]:
    short = too_few_windows(regime_counts(labels))
    return [
        dg.AssetCheckResult(
            check_name="both_regimes_trainable",
            passed=not short,
            metadata={"too_few": dg.MetadataValue.json(short), "needed": dg.MetadataValue.json(MIN_ROWS_PER_REGIME)},
        )
    ]


def _kernel_family_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "one_kernel_family",
        asset=asset,
        description="WARN when the label cache also holds labels of these windows computed by another kernel family "
        "(another CPU or GPU kind): never mixed in, but that machine's results differ",
    )


def _kernel_family_check(model_id: str, others: dict[str, int], prompts: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="one_kernel_family",
        passed=not others,
        severity=dg.AssetCheckSeverity.WARN,
        description=kernel_family_warning(model_id, others, prompts) or None,
        metadata={
            "kernel_family": shown_kernel_family(model_id),
            "other_kernel_families": dg.MetadataValue.json(others),
        },
    )


def _language_model_asset(name: str, partitions: Partitions, pool: str | None, version: str) -> dict:
    """What the labelling and the explaining assets share: one ticker a partition, the `llm` pool (one language
    model in memory at a time, dagster.yaml: pool limit 1), retries on a busy server, the prompt version."""
    return {
        "name": name,
        "partitions_def": partitions.tickers,
        "group_name": "router",
        "kinds": {"vllm", "parquet"},
        "owners": OWNERS,
        "pool": pool,
        "retry_policy": dg.RetryPolicy(max_retries=2, delay=RETRY_DELAY_S, backoff=dg.Backoff.EXPONENTIAL),
        "code_version": version,
    }


def llm_router_asset(partitions: Partitions, variant: RouterVariant, pool: str | None = "llm", hidden: bool = False):
    """The labels of an LLM variant; with `hidden`, each window's hidden state too (column `hidden`, llm_probe)."""
    name, parts = variant.routing_asset, variant.prompt_parts or ()
    version = prompt_version(parts)

    @dg.asset(
        **_language_model_asset(name, partitions, pool, version + ("+hidden" if hidden else "")),
        check_specs=[_trainable_check(name), _kernel_family_check_spec(name)],
        description=f"Router variant `{variant.name}`: {variant.description}. p_optimistic per window, with "
        "model id and prompt hash; cached by content (only windows whose model, prompt version and prompt text are "
        "new reach the model); the threshold is fitted on the training windows only. Scores only: the explanation "
        f"column holds the ones already in the cache (`{explanations_asset_name(variant)}` generates the rest, "
        "after the results)."
        + (" With the pooled final hidden state of each window's scoring pass (column hidden)." if hidden else ""),
    )
    def router(
        context: dg.AssetExecutionContext,
        protocol: ProtocolResource,
        llm_router: LLMRouterResource,
        feature_windows: pd.DataFrame,
        raw_prices: pd.DataFrame,
        raw_headlines: pd.DataFrame,
    ):
        cfg = protocol.config
        windows = feature_windows[feature_windows["split"] != "none"]
        prompts, _ = configured_prompts(windows, raw_headlines, raw_prices, cfg, parts)
        started, progress = time.time(), progress_every_10s(context, "labelled")
        factory = llm_router.backend_factory()
        spec = factory.hidden_spec if hidden else None
        if hidden and not spec:
            raise dg.Failure(HIDDEN_STATES_NEED_TRANSFORMERS, allow_retries=False)

        # A server that is down or busy may answer on the next try; anything else fails the same way again.
        with retry_only(ServerUnavailableError, TimeoutError), llm_router.cache() as cache:
            labels = label_windows(
                prompts,
                factory,
                cache,
                batch_size=llm_router.config.batch_size,
                progress=progress,
                prompt_version=version,
                hidden_spec=spec,
            )
            model_id = str(labels["model_id"].iloc[0])
            others = other_kernel_families(cache, prompts, model_id, version)
        if others:
            context.log.warning(kernel_family_warning(model_id, others, len(prompts)))
        threshold = fit_threshold(labels, cfg.router.threshold_quantile)
        labels = apply_threshold(labels, threshold)
        n_new = int((~labels["from_cache"]).sum())
        sample = labels[labels["explanation"].fillna("") != ""].tail(5)
        yield from checks_then_output(
            labels,
            [*_regime_checks(labels), _kernel_family_check(model_id, others, len(prompts))],
            metadata={
                "rows": len(labels),
                "labelled_now": n_new,
                "from_cache": len(labels) - n_new,
                "seconds": round(time.time() - started, 1),
                "threshold": float(threshold),
                "model_id": model_id,
                "kernel_family": shown_kernel_family(model_id),
                "prompt_version": version,
                "hidden_spec": spec or "none",
                "label_balance": dg.MetadataValue.json(regime_counts(labels)),
                "p_optimistic_mean": float(labels["p_optimistic"].mean()),
                "explained_per_split": dg.MetadataValue.json(explained_per_split(labels)),
                "example_prompt": dg.MetadataValue.md(f"```\n{prompts['prompt'].iloc[-1]}\n```"),
                "recent_explanations": dg.MetadataValue.md(
                    sample[["date", "label", "p_optimistic", "explanation"]].astype(str).to_markdown(index=False)
                    if len(sample)
                    else "(none)"
                ),
            },
        )

    return router


def explanations_asset_name(variant: RouterVariant) -> str:
    """router_labels -> router_explanations, router_labels_prices_only -> router_explanations_prices_only."""
    return variant.routing_asset.replace("router_labels", "router_explanations", 1)


def explained_per_split(table: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per split: windows, and how many of them have an explanation."""
    has = table["explanation"].map(lambda e: isinstance(e, str) and e.strip() != "")
    return {
        str(split): {"windows": int(len(group)), "explained": int(has[group.index].sum())}
        for split, group in table.groupby("split", sort=False)
    }


def llm_explanations_asset(partitions: Partitions, variant: RouterVariant, pool: str | None = "llm"):
    """The one-sentence explanations of an LLM variant's windows in `router.explain_splits`, off the critical path:
    downstream of its labels and upstream of nothing, run by `explanations_job` after a refresh's evaluation."""
    name, parts = explanations_asset_name(variant), variant.prompt_parts or ()
    version = prompt_version(parts)

    @dg.asset(
        **_language_model_asset(name, partitions, pool, version),
        tags={EXPLANATIONS_TAG: "true"},
        ins={"labels": dg.AssetIn(variant.routing_asset)},
        description=f"Router variant `{variant.name}`: a one-sentence explanation of each window of the splits in "
        "`router.explain_splits` (the live window included), generated after the results so that the verdict and "
        "the signal never wait for them. Cached beside the labels (the label cache's key; a label's p is never "
        "rewritten): a second run generates nothing.",
    )
    def explanations(
        context: dg.AssetExecutionContext,
        protocol: ProtocolResource,
        llm_router: LLMRouterResource,
        feature_windows: pd.DataFrame,
        raw_prices: pd.DataFrame,
        raw_headlines: pd.DataFrame,
        model_store: ModelStoreResource,
        labels: pd.DataFrame,
    ) -> dg.Output:
        cfg = protocol.config
        windows = feature_windows[feature_windows["split"] != "none"]
        prompts, explain = configured_prompts(windows, raw_headlines, raw_prices, cfg, parts)
        started, progress = time.time(), progress_every_10s(context, "explained")

        model_id = str(labels["model_id"].iloc[0]) if len(labels) else None
        with retry_only(ServerUnavailableError, TimeoutError), llm_router.cache() as cache:
            table = explain_windows(
                prompts,
                llm_router.backend_factory(),
                cache,
                explain,
                batch_size=llm_router.config.batch_size,
                progress=progress,
                model_id=model_id,
                prompt_version=version,
            )
        n_new = int(table["explained_now"].sum())
        # The signal of a day is recorded before its window is explained: fill its explanation in (the paper's
        # router only; the decision itself is never rewritten). Only the explanations generated now can be missing
        # from a recorded signal, so a night's cost does not grow with the length of the signal history.
        new = table[table["explained_now"]]
        filled = fill_explanations(model_store.signals_dir(), new) if variant.name == "llm" and len(new) else []
        sample = table.tail(5)
        return dg.Output(
            table,
            metadata={
                "rows": len(table),
                "explained_now": n_new,
                "from_cache": len(table) - n_new,
                "seconds": round(time.time() - started, 1),
                "explained_per_split": dg.MetadataValue.json(explained_per_split(table)),
                "splits": dg.MetadataValue.json(list(cfg.router.explain_splits)),
                "signals_explained_now": len(filled),
                "recent_explanations": dg.MetadataValue.md(
                    sample[["date", "split", "explanation"]].astype(str).to_markdown(index=False)
                    if len(sample)
                    else "(none)"
                ),
            },
        )

    return explanations


def build_router_assets(partitions: Partitions, variants: list[RouterVariant], llm_pool: str | None = "llm") -> list:
    """One routing asset per enabled variant that has a score (`single` has none), and one explanations asset per
    LLM variant; the language model's claim a slot of `llm_pool` (None: no pool). `llm`'s labels hold the hidden
    states of their scoring pass when a variant reads them (`llm_probe`)."""
    hidden = any(v.reads_hidden_states for v in variants)
    routers = [
        llm_router_asset(partitions, v, llm_pool, hidden=hidden and v.name == "llm")
        if v.is_llm
        else probe_router_asset(partitions, v)
        if v.probe
        else rule_router_asset(partitions, v)
        for v in variants
        if v.experts
    ]
    return routers + [llm_explanations_asset(partitions, v, llm_pool) for v in variants if v.experts and v.is_llm]
