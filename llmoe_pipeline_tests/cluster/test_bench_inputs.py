"""The cluster benchmark labels what the pipeline would: the same prompts as the router asset, for tickers of any
configured file."""

import numpy as np

from llmoe_pipeline.cluster.bench import _subset, ticker_prompts
from llmoe_pipeline.config.settings import load_settings
from llmoe_pipeline.core.paths import REPO_ROOT

RECENT = REPO_ROOT / "llmoe_pipeline" / "configs" / "all_tickers_recent.yaml"


def test_prompts_of_a_ticker_in_either_price_file_and_an_even_subset(data_dir):
    settings = load_settings(RECENT, data_dir=data_dir, tickers="AAPL,GE")
    for ticker in ("AAPL", "GE"):  # AAPL is in prices.csv, GE in prices_extra.csv only
        prompts, explain = ticker_prompts(settings, ticker)
        assert len(prompts) == 629 and set(prompts["ticker"]) == {ticker}
        assert set(prompts["split"]) == {"train", "validation", "test"}
        assert not explain.any()  # this config explains the live window only
        assert prompts["prompt"].str.contains(ticker).all()
    few, few_explain = _subset(prompts, explain, 24)
    assert len(few) == 24 and len(few_explain) == 24
    kept = np.linspace(0, len(prompts) - 1, 24).round().astype(int)
    assert few["prompt_sha256"].tolist() == prompts["prompt_sha256"].iloc[kept].tolist()
