"""The Dagster UI, rendered by a real headless Chromium against the running `dagster dev`: the lineage
graph shows every asset node, the catalog lists every asset key. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from llmoe_pipeline_tests.e2e.support import ARTIFACTS_DIR

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
GROUPS = ("data", "features", "router", "models", "evaluation", "signals")
# What each node of the lineage graph is labelled with (a key's last part), and the keys the catalog lists.
GRAPH_NODES = (
    "raw_prices",
    "raw_headlines",
    "feature_windows",
    "router_labels",
    "llm",
    "lightgbm",
    "mlp",
    "lstm",
    "moe",
    "predictions",
    "backtest_results",
    "daily_returns",
    "mlflow_runs",
    "router_diagnostics",
    "significance",
    "trading_signals",
)
CATALOG_KEYS = (
    "raw_prices",
    "raw_headlines",
    "feature_windows",
    "router_labels",
    "llmoe_search / llm",
    "expert_models / llm",
    "baseline_models / lightgbm",
    "baseline_models / mlp",
    "baseline_models / lstm",
    "baseline_models / moe",
    "predictions",
    "backtest_results",
    "daily_returns",
    "mlflow_runs",
)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def render(url: str, screenshot: Path, profile: Path, budget_ms: int, window: str = "1600,1400") -> str:
    """The page's DOM after `budget_ms` of virtual time (network fetches included), plus a screenshot."""
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--window-size={window}",
            "--hide-scrollbars",
            f"--virtual-time-budget={budget_ms}",
            f"--screenshot={screenshot}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def element_texts(dom: str) -> set[str]:
    """Text content of every element that holds only text (node labels, table cells)."""
    return {re.sub(r"\s+", " ", t).strip() for t in re.findall(r">([^<>]+)<", dom)}


def render_until(
    url: str, expected: tuple[str, ...], screenshot: Path, profile: Path, window: str = "1600,1400"
) -> set[str]:
    """Render, with a longer virtual-time budget on each retry while names are missing (slow machine)."""
    for budget_ms in (15_000, 30_000, 60_000):
        texts = element_texts(render(url, screenshot, profile, budget_ms, window))
        if set(expected) <= texts:
            break
    return texts


@pytest.fixture(scope="module")
def browser_profile(tmp_path_factory, dagster_dev) -> Path:
    # Dismiss the one-time "Join the Dagster community" dialog (what its Skip button does), so it does
    # not cover the screenshots.
    assert dagster_dev.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    return tmp_path_factory.mktemp("chromium-profile")


def test_lineage_graph_shows_every_asset_node(dagster_dev, browser_profile):
    expanded = ",".join(f"global@global:{g}" for g in GROUPS)  # every group opened, as "Expand all groups"
    url = f"{dagster_dev.url}/asset-groups?{urllib.parse.urlencode({'expanded': expanded})}"
    screenshot = ARTIFACTS_DIR / "dagster_asset_lineage.png"
    # The graph only draws the nodes inside the viewport: a window large enough for every group (9 variants).
    texts = render_until(url, GRAPH_NODES + GROUPS, screenshot, browser_profile, window="3600,12000")
    assert "Global asset lineage" in texts
    assert not set(GRAPH_NODES + GROUPS) - texts, f"missing from the graph: {set(GRAPH_NODES + GROUPS) - texts}"
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_catalog_lists_every_asset_key(dagster_dev, browser_profile):
    screenshot = ARTIFACTS_DIR / "dagster_asset_catalog.png"
    # The catalog is a virtual list: it renders the rows inside the viewport, so a window tall enough for all.
    texts = render_until(f"{dagster_dev.url}/assets", CATALOG_KEYS, screenshot, browser_profile, window="1600,5000")
    assert not set(CATALOG_KEYS) - texts, f"missing from the catalog: {set(CATALOG_KEYS) - texts}"
    assert screenshot.stat().st_size > 20_000


def test_experts_show_their_ticker_by_regime_partitions(dagster_dev, browser_profile):
    screenshot = ARTIFACTS_DIR / "dagster_expert_partitions.png"
    url = f"{dagster_dev.url}/assets/expert_models/llm?view=partitions"
    expected = ("AAPL", "MSFT", "optimistic", "pessimistic", "4 Partitions Selected")  # one column per dimension
    texts = render_until(url, expected, screenshot, browser_profile)
    assert not set(expected) - texts, f"missing from the partitions view: {set(expected) - texts}"
    dom = render(url, screenshot, browser_profile, 15_000)
    assert 'placeholder="Filter by regime' in dom and 'placeholder="Filter by ticker' in dom
