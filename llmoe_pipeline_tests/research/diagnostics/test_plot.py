"""The Optimistic share per month plot."""

import pandas as pd
import pytest

from llmoe_pipeline.reporting.router_plots import plot_optimistic_share


def test_plot_writes_one_png_atomically(tmp_path):
    months = pd.date_range("2014-01-01", periods=24, freq="MS")
    monthly = pd.concat(
        [
            pd.DataFrame({"variant": v, "month": months, "optimistic_share": share, "windows": 21})
            for v, share in (("llm", 0.6), ("oracle", 0.5))
        ]
    )
    path = plot_optimistic_share(
        monthly, tmp_path / "plots" / "share.png", (months[12], months[-1]), future_variants=["oracle"]
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["share.png"]  # no temp file left behind


def test_plot_refuses_an_empty_or_malformed_table(tmp_path):
    with pytest.raises(ValueError, match="no monthly"):
        plot_optimistic_share(pd.DataFrame(columns=["variant", "month", "optimistic_share"]), tmp_path / "a.png")
    with pytest.raises(ValueError, match="lacks columns"):
        plot_optimistic_share(pd.DataFrame({"variant": ["x"]}), tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()
