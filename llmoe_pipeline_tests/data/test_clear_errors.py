"""Errors that name the file and say how to fix it (issue #14, item 11, data part): a data path that is a folder,
dates in an unknown format, a corrupt Parquet file behind `--tickers all`, a damaged router label cache."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest
import yaml

from llmoe_pipeline import DataValidationError, load_headlines, load_prices
from llmoe_pipeline.config.protocol import PipelineConfig
from llmoe_pipeline.config.settings import available_tickers, load_settings
from llmoe_pipeline.router.cache import CacheEntry, LabelCache, LabelCacheError

PRICES = "date,ticker,open,high,low,close,adj_close,volume\n2020-01-02,XYZ,10,11,9,10.5,10.4,100\n"


def test_a_data_path_that_is_a_folder_is_one_validation_error(tmp_path):
    folder = tmp_path / "prices.csv"  # a folder named like a file
    folder.mkdir()
    for load in (load_prices, load_headlines):
        with pytest.raises(DataValidationError) as err:
            load(folder)
        assert str(err.value).startswith(f"{folder}: is a folder, not a data file")
    # Through the config: a plain name that is a folder (glob patterns only ever match files).
    cfg = PipelineConfig.model_validate({"data": {"data_dir": str(tmp_path), "price_files": ["prices.csv"]}})
    with pytest.raises(DataValidationError, match="is a folder"):
        load_prices(cfg.data.price_paths())


@pytest.mark.parametrize("bad", ["2014/02/03", "03.02.2014", "Feb 3 2014", "2014-02-30"])
def test_unparsable_dates_say_the_expected_formats_and_show_the_values(tmp_path, bad):
    path = tmp_path / "prices.csv"
    path.write_text(PRICES + PRICES.splitlines()[1].replace("2020-01-02", bad) + "\n", encoding="utf-8")
    with pytest.raises(DataValidationError) as err:
        load_prices(path)
    text = str(err.value)
    assert (err.value.column, err.value.rows) == ("date", [3])
    assert f"unparsable date(s) ['{bad}']" in text and "expected dates as YYYY-MM-DD or M/D/YYYY" in text


def _config(tmp_path, price_files) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data": {"data_dir": str(tmp_path), "price_files": price_files}}))
    return str(path)


def test_truncated_parquet_behind_tickers_all_is_an_error_naming_it(tmp_path):
    good = tmp_path / "prices_a.parquet"
    pd.DataFrame({"date": ["2020-01-02"], "ticker": ["xyz"], "close": [1.0]}).to_parquet(good)
    cfg = PipelineConfig.model_validate({"data": {"data_dir": str(tmp_path), "price_files": ["prices_*.parquet"]}})
    assert available_tickers(cfg) == ["XYZ"]
    broken = tmp_path / "prices_b.parquet"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataValidationError) as err:
        available_tickers(cfg)
    assert str(err.value).startswith(f"{broken}: not a readable Parquet file")
    with pytest.raises(DataValidationError, match=f"{broken}: not a readable Parquet file"):
        load_settings(_config(tmp_path, ["prices_*.parquet"]), tickers="all")


def test_tickers_all_with_a_file_without_tickers_or_a_folder_names_it(tmp_path):
    (tmp_path / "prices.csv").write_text("Date,Open\n1/2/2020,1\n", encoding="utf-8")
    with pytest.raises(DataValidationError, match=r"prices.csv: row 1, column 'ticker': no 'ticker' column"):
        load_settings(_config(tmp_path, ["prices.csv"]), tickers="all")
    (tmp_path / "more").mkdir()
    with pytest.raises(DataValidationError, match="more: is a folder"):
        load_settings(_config(tmp_path, ["more"]), tickers="all")


def _cache_with_labels(path, n=2000):
    with LabelCache(path) as cache:
        cache.put_many(CacheEntry(f"k{i}", "model", "v2", "sha", 0.5, "because " * 50) for i in range(n))


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_router_cache_is_one_error_naming_it_and_how_to_rebuild(tmp_path, damage):
    path = tmp_path / "router_cache.sqlite"
    if damage == "garbage":
        path.write_bytes(b"\x93garbage, not SQLite\x00" * 500)
    else:
        _cache_with_labels(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(LabelCacheError) as err, LabelCache(path) as cache:
        cache.get_many(f"k{i}" for i in range(2000))
    text = str(err.value)
    assert text.startswith(f"{path}: the router label cache is damaged or not a SQLite database")
    assert "delete it" in text and "recomputes the labels" in text and isinstance(err.value, ValueError)
    # The advice works: without the file, the cache starts empty.
    path.unlink()
    with LabelCache(path) as cache:
        assert len(cache) == 0


def test_a_locked_cache_is_not_reported_as_damaged(tmp_path):
    path = tmp_path / "router_cache.sqlite"
    _cache_with_labels(path, n=1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with LabelCache(path, busy_timeout_s=0.1) as cache, pytest.raises(sqlite3.OperationalError, match="locked"):
            cache.put_many([CacheEntry("k", "model", "v2", "sha", 0.5, None)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
