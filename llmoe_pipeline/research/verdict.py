"""The verdict per ticker, in plain words: models ranked by test Sharpe with the Ledoit-Wolf p-value against the
`llm` LLMoE, membership of the 10 % Model Confidence Set, the router's test AUC with its interval, and the
walk-forward line. Pure: reads the tables the research assets store (significance, router_diagnostics, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from llmoe_pipeline.catalog import BUY_AND_HOLD, LLMOE, TRADING_DAYS_PER_YEAR, uses_future
from llmoe_pipeline.models.registry import model_rank

ALPHA = 0.05
MAIN_COMPARISON = BUY_AND_HOLD  # the power sentence's and the report's power curve's comparison
POWER_COLUMNS = ["mde", "mde_closed_form", "gap", "target_power", "power_at_gap", "power_at_gap_closed_form",
                 "ruled_out_above"]  # fmt: skip


@dataclass(frozen=True)
class TickerEvidence:
    ticker: str
    summary: pd.DataFrame  # report.summarize rows of the test split at the protocol's cost
    significance: dict  # {"test": {"pairs", "spa", "mcs", "psr"}, "walk_forward": {...}} as records
    diagnostics: pd.DataFrame | None = None  # router_diagnostics: variant, split, metric, value, ci_low, ci_high
    walk_forward: pd.DataFrame | None = None  # report.summarize rows of split "walk_forward" at the protocol's cost
    yearly: pd.DataFrame | None = None  # models × years of mean Sharpe
    notes: list[str] = field(default_factory=list)


def _pairs(tables: dict) -> pd.DataFrame:
    """The LLMoE-vs-other rows of the Ledoit-Wolf table, numbers as floats (NaN where a test is undefined)."""
    pairs = pd.DataFrame(tables.get("pairs") or [])
    if pairs.empty:
        return pairs
    numeric = ["sharpe_diff", "p_value", "p_value_hac", "sharpe_a", "sharpe_b", *POWER_COLUMNS]
    for column in (c for c in numeric if c in pairs):
        pairs[column] = pd.to_numeric(pairs[column], errors="coerce")
    return pairs[pairs["model_a"] == LLMOE].set_index("model_b")


def ranking(evidence: TickerEvidence, split: str = "test") -> pd.DataFrame:
    """model, sharpe (mean ± std over seeds), sharpe_avg (seed-averaged series), p_vs_llmoe, in_mcs, uses_future;
    ranked by mean Sharpe over seeds, models that use the future last."""
    summary = evidence.summary if split == "test" else evidence.walk_forward
    assert summary is not None, f"no {split} results"
    tables = evidence.significance.get(split, {})
    pairs = _pairs(tables)
    mcs = pd.DataFrame(tables.get("mcs") or [])
    mcs = mcs.set_index("model") if len(mcs) else mcs
    rows = []
    for _, r in summary.iterrows():
        model = r["model"]
        rows.append(
            {
                "model": model,
                "sharpe": r["sharpe_ratio_mean"],
                "sharpe_std": r["sharpe_ratio_std"],
                "seeds": int(r["n_seeds"]),
                "sharpe_avg": mcs["sharpe"].get(model) if len(mcs) else float("nan"),
                "p_vs_llmoe": pairs["p_value"].get(model) if len(pairs) and model != LLMOE else None,
                "in_mcs": mcs["in_mcs"].get(model) if len(mcs) and "in_mcs" in mcs else None,
                "uses_future": uses_future(model),
            }
        )
    table = pd.DataFrame(rows)
    order = table.assign(
        _f=table["uses_future"], _s=-table["sharpe"].fillna(-1e9), _r=table["model"].map(model_rank)
    ).sort_values(["_f", "_s", "_r"])
    return order.drop(columns=["_f", "_s", "_r"]).reset_index(drop=True)


def _interval_meaning(low: float, high: float, null: float = 0.5) -> str:
    if low <= null <= high:
        return "no better than chance"
    return "informative" if low > null else "worse than chance (inverted)"


def _auc_line(diagnostics: pd.DataFrame | None) -> str:
    """The LLM router's test AUC; the most any router here extracts; what the text adds to the prices (when the
    probes ran)."""
    if diagnostics is None or diagnostics.empty:
        return "Router: no diagnostics."
    future = diagnostics["uses_future"].astype(bool) if "uses_future" in diagnostics else False
    test = diagnostics[(diagnostics["split"] == "test") & ~future]
    auc = test[test["metric"] == "auc"]
    llm = auc[auc["variant"] == "llm"]
    if llm.empty:
        return "Router: no test AUC."
    value, low, high = (float(llm.iloc[0][c]) for c in ("value", "ci_low", "ci_high"))
    words = [f"Router (llm) test AUC {value:.3f} [95 % CI {low:.3f}, {high:.3f}]: {_interval_meaning(low, high)}."]
    if len(auc) > 1:
        best = auc.loc[auc["value"].idxmax()]
        words.append(
            f"The most any router here extracts: {best['variant']} test AUC {best['value']:.3f} "
            f"[{best['ci_low']:.3f}, {best['ci_high']:.3f}] ({_interval_meaning(best['ci_low'], best['ci_high'])})."
        )
    for r in test[test["metric"].str.startswith("auc_gain:")].itertuples():
        reference = str(r.metric).split(":", 1)[1]
        seen = "not detectable" if r.ci_low <= 0 <= r.ci_high else "detectable"
        words.append(
            f"The text adds {r.value:+.3f} AUC over the prices alone ({r.variant} vs {reference}) "
            f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]: {seen}."
        )
    return " ".join(words)


def _fmt_p(p) -> str:
    return "-" if p is None or pd.isna(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def plain_words(evidence: TickerEvidence) -> str:
    """One sentence: does the LLM router help here, and how sure are we."""
    pairs = _pairs(evidence.significance.get("test", {}))
    if pairs.empty:
        return "No significance tests yet."
    fair = pairs[~pairs.index.map(uses_future)]
    significant = fair[fair["p_value"] < ALPHA]  # NaN (an undefined Sharpe, e.g. all cash) is never significant
    better = [str(m) for m in significant.index[significant["sharpe_diff"] > 0]]
    worse = [str(m) for m in significant.index[significant["sharpe_diff"] < 0]]
    if better and not worse:
        return f"LLMoE beats {', '.join(better)} at the 5 % level on the test days."
    if worse and not better:
        return f"LLMoE is worse than {', '.join(worse)} at the 5 % level; it beats no model significantly."
    if not better and not worse:
        return (
            "No Sharpe difference between LLMoE and any other model is significant at the 5 % level: on these "
            "test days the LLM router's contribution cannot be told apart from chance."
        )
    return f"Mixed: LLMoE beats {', '.join(better)} but loses to {', '.join(worse)} at the 5 % level."


def power_words(evidence: TickerEvidence, split: str = "test") -> str:
    """What the test could have seen: the main comparison's MDE, power at the configured gap and equivalence bound,
    and the range of MDEs over every fair comparison. Empty when the tables predate the power columns."""
    pairs = _pairs(evidence.significance.get(split, {}))
    if pairs.empty or "mde" not in pairs:
        return ""
    fair = pairs[~pairs.index.map(uses_future) & pairs["mde"].notna()]
    if fair.empty:
        return ""
    main_name = MAIN_COMPARISON if MAIN_COMPARISON in fair.index else str(fair.index[0])
    main = fair.loc[main_name]
    mde = f"{main['mde']:.2f} or more" if pd.notna(main["mde"]) else "no difference up to 20"
    return (
        f"Against {main_name} this test detects Sharpe differences of {mde} with "
        f"{main['target_power'] * 100:.0f} % power (closed form "
        f"{main['mde_closed_form']:.2f}); a gap of {main['gap']:.1f} would have been detected with probability "
        f"{main['power_at_gap']:.2f}; differences above {main['ruled_out_above']:.2f} are ruled out at 5 %. Over the "
        f"{len(fair)} comparisons with models that do not use the future, the detectable difference is "
        f"{fair['mde'].min():.2f} to {fair['mde'].max():.2f}."
    )


def _num(value) -> str:
    """Two decimals, or n/a for an undefined statistic (None or NaN in the stored records)."""
    return "n/a" if value is None or pd.isna(value) else f"{value:.2f}"


def selection_words(evidence: TickerEvidence) -> str:
    """The deflated Sharpe ratio and PBO of the reported LLMoE, and its minimum track record, in one sentence each."""
    tables = evidence.significance.get("test", {})
    lines = []
    record = pd.DataFrame(tables.get("track_record") or [])
    if len(record):
        own = record[record["model"] == LLMOE]
        for _, r in own.iterrows():
            target = "0" if r["against"] == "zero" else f"buy-and-hold's {_num(r['benchmark_sharpe'])}"
            years = r["min_track_record_years"]
            need = (
                f"a 95 % level needs {years:.1f} years of such returns "
                f"(the test has {r['n_days'] / TRADING_DAYS_PER_YEAR:.1f})"
                if years is not None and pd.notna(years)
                else "no track record reaches a 95 % level (the Sharpe ratio is not above it)"
            )
            if r["psr"] is not None and pd.notna(r["psr"]):
                lines.append(f"Track record against a Sharpe of {target}: PSR {_num(r['psr'])}; {need}.")
    for sel in tables.get("selection") or []:
        if sel.get("reason"):
            lines.append(f"Selection: {sel['reason']}.")
            continue
        dsr, pbo = sel["deflated"], sel["pbo"]
        per = ", ".join(f"{k} {v}" for k, v in sel["configurations_per_variant"].items())
        lines.append(
            f"Selection: the reported LLMoE is one of {dsr['n_trials']} grid configurations tried ({per}); "
            f"the best of that many skill-less trials would show a Sharpe of {_num(dsr['sr0'])}, so the deflated "
            f"Sharpe ratio is {_num(dsr['dsr'])}; the probability of backtest overfitting of its grid is "
            f"{_num(pbo['pbo'])} ({pbo['combinations']} CSCV halves of {pbo['blocks']} blocks)."
            + "".join(f" ({why})" for why in {dsr.get("reason"), pbo.get("reason")} if why)
        )
    return " ".join(lines)


def _table_lines(table: pd.DataFrame) -> list[str]:
    names = [r["model"] + (" *" if r["uses_future"] else "") for _, r in table.iterrows()]
    width = max([18, *map(len, names)])
    lines = [f"  {'model':<{width}} {'Sharpe (seeds)':>15} {'avg-pos':>8} {'p vs LLMoE':>11} {'10% MCS':>8}"]
    for name, (_, r) in zip(names, table.iterrows()):
        mcs = "-" if r["in_mcs"] is None or pd.isna(r["in_mcs"]) else ("yes" if r["in_mcs"] else "no")
        spread = f"{r['sharpe']:.2f} ± {r['sharpe_std']:.2f}" if pd.notna(r["sharpe"]) else "n/a"
        avg = f"{r['sharpe_avg']:.2f}" if pd.notna(r["sharpe_avg"]) else "-"
        lines.append(f"  {name:<{width}} {spread:>15} {avg:>8} {_fmt_p(r['p_vs_llmoe']):>11} {mcs:>8}")
    return lines


def verdict_text(evidence: TickerEvidence) -> str:
    lines = [
        f"{evidence.ticker}: verdict (test split, seeds ranked by mean Sharpe; p: Ledoit-Wolf bootstrap test "
        "of equal Sharpe vs LLMoE on the seed-averaged returns; * uses the future: an upper bound only)"
    ]
    lines += _table_lines(ranking(evidence))
    lines.append("  " + _auc_line(evidence.diagnostics))
    if evidence.walk_forward is not None and not evidence.walk_forward.empty:
        wf = ranking(evidence, "walk_forward")
        fair = wf[~wf["uses_future"]]
        llm = fair[fair["model"] == LLMOE].iloc[0]
        best = fair[fair["model"] != LLMOE].iloc[0]
        years = evidence.yearly
        per_year = (
            "; per year " + ", ".join(f"{int(y)} {v:.2f}" for y, v in years.loc[LLMOE].items())
            if years is not None and LLMOE in years.index
            else ""
        )
        lines.append(
            f"  Walk-forward ({len(years.columns) if years is not None else '?'} years): LLMoE Sharpe "
            f"{llm['sharpe']:.2f} vs best other {best['model']} {best['sharpe']:.2f} "
            f"(p {_fmt_p(best['p_vs_llmoe'])}){per_year}."
        )
        if wf_power := power_words(evidence, "walk_forward"):
            lines.append(f"  Walk-forward power: {wf_power}")
    lines.append("  In plain words: " + plain_words(evidence))
    for extra in (power_words(evidence), selection_words(evidence)):
        if extra:
            lines.append("  " + extra)
    lines += [f"  Note: {n}" for n in evidence.notes]
    return "\n".join(lines)
