"""Property tests (hypothesis): features of any valid positive price series, errors for invalid ones, and
write paths that cannot leave the LLMOE home folder.

Examples are derandomized (the same ones every run, so CI never flakes) and kept to <= 50 per property.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from llmoe_pipeline import DataValidationError, build_features, load_prices, window_columns
from llmoe_pipeline.core.files import atomic_path
from llmoe_pipeline.core.paths import resolve_under_home
from llmoe_pipeline.features.windows import FEATURE_NAMES, MA_WINDOWS, SPLITS, daily_features

WARM_UP = 34  # rows per ticker without a feature row: 29 (30-day average) + 4 (window) + 1 (no next day)
PROPERTY = settings(
    max_examples=50, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


# ---------------------------------------------------------------------------------------------- price series
@st.composite
def ohlc_series(draw, ticker: str, min_days: int = 1, max_days: int = 80) -> pd.DataFrame:
    """A valid daily series in load_prices' format: positive prices, low <= open, close <= high."""
    n = draw(st.integers(min_days, max_days))
    start_price = draw(st.floats(0.01, 5000.0))
    returns = draw(arrays(np.float64, n, elements=st.floats(-0.2, 0.2)))
    spreads = draw(arrays(np.float64, (n, 3), elements=st.floats(0.0, 0.05)))
    dividend_factor = draw(st.floats(0.3, 1.0))  # adj_close below close, as after dividends
    close = start_price * np.exp(np.cumsum(returns))
    open_ = close * np.exp(spreads[:, 0] - 0.025)
    return pd.DataFrame(
        {
            "date": pd.bdate_range("2014-01-01", periods=n),
            "ticker": ticker,
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spreads[:, 1]),
            "low": np.minimum(open_, close) * (1 - spreads[:, 2]),
            "close": close,
            "adj_close": close * dividend_factor,
            "volume": draw(arrays(np.int64, n, elements=st.integers(0, 10**10))),
        }
    )


@st.composite
def price_panels(draw, min_days: int = 1) -> pd.DataFrame:
    tickers = draw(st.lists(st.sampled_from(["AAPL", "MSFT", "GE", "BRK.B"]), min_size=1, max_size=3, unique=True))
    return pd.concat([draw(ohlc_series(t, min_days=min_days)) for t in tickers], ignore_index=True)


@PROPERTY
@given(price_panels())
def test_build_features_rows_are_input_rows_minus_34_per_ticker_else_an_error(prices):
    n_days = prices.groupby("ticker").size()
    if n_days.max() <= WARM_UP:
        with pytest.raises(ValueError, match="35 trading days a complete window needs"):
            build_features(prices)
        return
    features = build_features(prices)
    got = features.groupby("ticker").size().reindex(n_days.index, fill_value=0)
    assert got.to_dict() == {t: max(n - WARM_UP, 0) for t, n in n_days.items()}
    for ticker, rows in features.groupby("ticker"):
        dates = prices.loc[prices["ticker"] == ticker, "date"].to_numpy()
        assert (
            rows["date"].to_numpy() == dates[WARM_UP - 1 : -1]
        ).all()  # window ends t = day 34 .. the day before last


@PROPERTY
@given(price_panels(min_days=WARM_UP + 1))
def test_build_features_of_valid_prices_are_finite_with_consistent_labels(prices):
    features = build_features(prices)
    assert np.isfinite(features[window_columns()].to_numpy()).all()
    assert np.isfinite(features["next_return"].to_numpy()).all()
    assert set(features["split"]) <= set(SPLITS)
    for ticker, rows in features.groupby("ticker"):
        adj = prices.loc[prices["ticker"] == ticker, "adj_close"].to_numpy()
        today, tomorrow = adj[WARM_UP - 1 : -1], adj[WARM_UP:]
        assert (rows["target"].to_numpy() == (tomorrow > today)).all()
        np.testing.assert_allclose(rows["next_return"].to_numpy(), tomorrow / today - 1, rtol=1e-12, atol=1e-15)
        # Day t's own features sit in the lag-0 columns: c_open = open/close - 1 of that day.
        opens = prices.loc[prices["ticker"] == ticker, ["open", "close"]].to_numpy()[WARM_UP - 1 : -1]
        np.testing.assert_allclose(
            rows["c_open_lag0"].to_numpy(), opens[:, 0] / opens[:, 1] - 1, rtol=1e-12, atol=1e-15
        )


@PROPERTY
@given(ohlc_series("AAPL", min_days=31), ohlc_series("MSFT", min_days=1), st.floats(1e-3, 1e3))
def test_daily_features_nan_only_where_history_is_short_and_scale_and_ticker_independent(aapl, msft, scale):
    both = daily_features(pd.concat([msft, aapl], ignore_index=True))
    alone = daily_features(aapl)
    got = both[both["ticker"] == "AAPL"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, alone)  # another ticker's rows change nothing
    expected_nans = {
        "c_open": 0,
        "c_high": 0,
        "c_low": 0,
        "n_close": 1,
        "n_adj_close": 1,
        **{f"ma_{k}": k - 1 for k in MA_WINDOWS},
    }
    for name in FEATURE_NAMES:
        values = alone[name].to_numpy()
        n_nan = expected_nans[name]
        assert np.isnan(values[:n_nan]).all() and np.isfinite(values[n_nan:]).all(), name
    # Features are ratios: the price level (e.g. a currency or a split basis) does not change them.
    scaled = aapl.copy()
    for col in ("open", "high", "low", "close", "adj_close"):
        scaled[col] = scaled[col] * scale
    pd.testing.assert_frame_equal(daily_features(scaled), alone, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------- invalid input
INVALID = {"zero": "0", "negative": "-1.25", "nan": "nan", "inf": "inf", "text": "n/a", "empty": ""}


@PROPERTY
@given(ohlc_series("AAPL", min_days=WARM_UP + 1), st.data())
def test_invalid_price_anywhere_is_an_error_naming_its_row_and_column_not_garbage_features(prices, data):
    row = data.draw(st.integers(0, len(prices) - 1), label="row")
    column = data.draw(st.sampled_from(["open", "high", "low", "close", "adj_close"]), label="column")
    bad = data.draw(st.sampled_from(sorted(INVALID)), label="kind")
    table = prices.assign(date=prices["date"].dt.strftime("%Y-%m-%d")).astype(str)
    table.loc[row, column] = INVALID[bad]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "prices.csv"
        table.to_csv(path, index=False)
        with pytest.raises(DataValidationError) as err:
            load_prices(path)
    assert (err.value.column, err.value.rows) == (column, [row + 2])


@pytest.mark.parametrize("column", ["open", "adj_close"])
@pytest.mark.parametrize("value", [0.0, -5.0, np.nan, np.inf])
def test_build_features_rejects_non_positive_prices_given_directly(aapl_prices, value, column):
    prices = aapl_prices.iloc[:60].copy()
    prices.loc[40, column] = value
    day = prices.loc[40, "date"].date()
    with pytest.raises(ValueError, match=f"{column} must be a finite positive number, got {value} for AAPL on {day}"):
        build_features(prices)


# ---------------------------------------------------------------------------------------------- write paths
SEGMENTS = st.sampled_from(["..", ".", "a", "b", "sub", "x.parquet", ""])
RELATIVE = st.lists(SEGMENTS, min_size=1, max_size=6).map("/".join)


def escapes(relative: str) -> bool:
    """Independent oracle for a path without symlinks: does it leave its base once normalized?"""
    norm = posixpath.normpath(relative)
    return posixpath.isabs(norm) or norm == ".." or norm.startswith("../")


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    """A home with a symlink inside pointing inside, one pointing outside, and a dangling one."""
    root = tmp_path_factory.mktemp("homes").resolve()
    home, outside = root / "home", root / "outside"
    (home / "sub").mkdir(parents=True)
    outside.mkdir()
    (home / "link_in").symlink_to(home / "sub")
    (home / "link_out").symlink_to(outside)
    (home / "link_dangling").symlink_to(root / "nowhere")
    (root / "home_alias").symlink_to(home)  # the home itself reached through a symlink
    return home


def under(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


@PROPERTY
@given(RELATIVE)
def test_relative_write_path_stays_under_home_or_is_refused(homes, relative):
    norm = posixpath.normpath(relative)
    if escapes(relative):
        with pytest.raises(ValueError, match="escapes the LLMOE home folder"):
            resolve_under_home(relative, home=homes)
    elif norm == ".":  # the home itself is no file to write
        with pytest.raises(ValueError, match="is the LLMOE home folder .* itself"):
            resolve_under_home(relative, home=homes)
    else:
        got = resolve_under_home(relative, home=homes)
        assert got == homes / norm
        # The same path through a symlinked home resolves to the same place.
        assert resolve_under_home(relative, home=homes.parent / "home_alias") == got


@PROPERTY
@given(RELATIVE, st.sampled_from(["/etc", "/tmp", "/", "OUTSIDE", "HOME"]))
def test_absolute_write_path_is_allowed_only_inside_home(homes, relative, prefix):
    base = {"OUTSIDE": str(homes.parent / "outside"), "HOME": str(homes)}.get(prefix, prefix)
    absolute = posixpath.join(base, relative)
    normalized = Path(posixpath.normpath(absolute))
    if normalized == homes:
        with pytest.raises(ValueError, match="itself"):
            resolve_under_home(absolute, home=homes)
    elif under(normalized, homes):
        assert resolve_under_home(absolute, home=homes) == normalized
    else:
        with pytest.raises(ValueError, match="escapes"):
            resolve_under_home(absolute, home=homes)


@PROPERTY
@given(
    st.sampled_from(["link_in", "link_out", "link_dangling"]),
    st.lists(SEGMENTS.filter(lambda s: s != ".."), max_size=3),
)
def test_symlinks_cannot_carry_a_write_path_out_of_home(homes, link, tail):
    relative = "/".join([link, *tail])
    if link == "link_in":
        got = resolve_under_home(relative, home=homes)
        assert under(got, homes / "sub")
    else:
        with pytest.raises(ValueError, match="escapes"):
            resolve_under_home(relative, home=homes)


@pytest.mark.parametrize("ticker", ["../../ESCAPED", "/tmp/ESCAPED", "AAPL", "BRK.B", "..", "a/b"])
def test_asset_file_of_any_partition_key_stays_under_its_base_or_is_refused(tmp_path, ticker):
    from llmoe_pipeline.defs.io_manager import asset_file

    base = tmp_path / "assets"
    # The partition key is the file name: it escapes exactly when '<key>.parquet' normalizes outside the key folder.
    if escapes(posixpath.join("raw_prices", f"{ticker}.parquet")):
        with pytest.raises(ValueError, match="escapes the assets folder"):
            asset_file(base, ["raw_prices"], ticker, "parquet")
    else:
        got = asset_file(base, ["raw_prices"], ticker, "parquet")
        assert got == base.resolve() / "raw_prices" / f"{ticker}.parquet" and under(got, base.resolve())


@pytest.mark.parametrize("spec", ["AAPL,../x", ["/tmp/x"], "AAPL,.hidden", "-rf"])
def test_tickers_from_the_environment_must_be_plain_names(spec):
    from llmoe_pipeline.config.settings import ConfigError, load_settings, resolve_tickers

    cfg = load_settings().protocol
    with pytest.raises(ConfigError, match="invalid ticker"):
        resolve_tickers(spec, cfg)
    with pytest.raises(ConfigError, match="invalid ticker"):  # --tickers / $LLMOE_TICKERS, at load time
        load_settings(tickers=spec)
    assert resolve_tickers(" aapl, brk.b ,MSFT", cfg) == ["AAPL", "BRK.B", "MSFT"]
    assert load_settings(tickers=" aapl, brk.b ,MSFT").tickers == ("AAPL", "BRK.B", "MSFT")


def test_invalid_ticker_in_the_config_is_refused(tmp_path):
    from llmoe_pipeline.config.settings import ConfigError, load_settings

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data": {"tickers": ["AAPL", "../x"]}}), encoding="utf-8")
    # Tickers are upper-cased when read, so the message shows the normalized name.
    with pytest.raises(ConfigError, match=r"invalid ticker\(s\) \['\.\./X'\]"):
        load_settings(path)


def test_invalid_ticker_in_the_config_file_is_an_error_naming_the_file_and_key(tmp_path):
    from llmoe_pipeline.config.settings import ConfigError, load_settings

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data": {"tickers": ["AAPL", "../x"]}}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value).startswith(f"{path}: data.tickers: ")


def _write_one_asset(manager, instance, partition: str = "AAPL"):
    import dagster as dg

    context = dg.build_output_context(asset_key=dg.AssetKey(["raw_prices"]), partition_key=partition, instance=instance)
    manager.handle_output(context, pd.DataFrame({"x": [1.0]}))


@pytest.mark.parametrize("base_dir", ["../escaped", "ABSOLUTE"])
def test_io_manager_base_dir_from_a_config_file_cannot_leave_home(tmp_path, monkeypatch, base_dir):
    """The assets folder is <home>/assets, from the settings: a config file cannot point it elsewhere."""
    from llmoe_pipeline.config.settings import ConfigError, load_settings

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # '../escaped' would land in tmp_path, never in the checkout
    path = tmp_path / "config.yaml"
    target = str(tmp_path / "elsewhere") if base_dir == "ABSOLUTE" else base_dir
    for section in (
        {"io_manager": {"base_dir": target}},
        {"io_manager": {"config": {"base_dir": target}}},
        {"resources": {"io_manager": {"config": {"base_dir": target}}}},
    ):
        path.write_text(yaml.safe_dump(section), encoding="utf-8")
        with pytest.raises(ConfigError, match=f"^{path}: .*Extra inputs are not permitted"):
            load_settings(path, home=tmp_path / "home")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [path]


@pytest.mark.parametrize("base_dir", ["../escaped", "ABSOLUTE"])
def test_io_manager_base_dir_from_run_config_cannot_leave_home(tmp_path, monkeypatch, base_dir):
    """Resource config can still be edited per run (the Dagster launchpad): writing outside the home is not fine."""
    import dagster as dg

    from llmoe_pipeline.config.settings import load_settings
    from llmoe_pipeline.defs.resources import build_resources

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # '../escaped' lands in tmp_path, never in the checkout

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["AAPL"]))
    def raw_prices() -> pd.DataFrame:
        return pd.DataFrame({"x": [1.0]})

    resources = {"io_manager": build_resources(load_settings(home=home))["io_manager"]}
    target = str(tmp_path / "elsewhere") if base_dir == "ABSOLUTE" else base_dir
    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize(
            [raw_prices],
            resources=resources,
            partition_key="AAPL",
            instance=instance,
            run_config={"resources": {"io_manager": {"config": {"home": str(home), "folder": target}}}},
            raise_on_error=False,
        )  # refusing is fine; writing outside the home is not
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(under(p, home) for p in written)


def test_io_manager_writes_under_the_home_of_the_settings_wherever_the_process_runs(tmp_path, monkeypatch):
    """The home is resolved once, when the settings load (a relative --home is relative to the folder then);
    the IO manager built from them writes <home>/assets/<key>/<partition>.parquet and nothing else, even after
    the working folder changed and with $LLMOE_HOME pointing elsewhere."""
    import dagster as dg

    from llmoe_pipeline.config.settings import load_settings
    from llmoe_pipeline.defs.resources import build_resources

    home, other = tmp_path / "home", tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMOE_HOME", str(tmp_path / "env_home"))
    settings = load_settings(home="home")
    assert settings.home == home.resolve()
    manager = build_resources(settings)["io_manager"]
    assert manager.base_dir == home.resolve() / "assets"
    monkeypatch.chdir(other)
    with dg.DagsterInstance.ephemeral() as instance:
        _write_one_asset(manager, instance)
        for escaping in ("../../ESCAPED", "/tmp/ESCAPED"):  # a partition key never carries a write out
            with pytest.raises(ValueError, match="escapes the assets folder"):
                _write_one_asset(manager, instance, escaping)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [home / "assets/raw_prices/AAPL.parquet"]


# ---------------------------------------------------------------------------------------------- atomic_path
@PROPERTY
@given(
    old=st.one_of(st.none(), st.binary(max_size=64)),
    new=st.binary(max_size=4096),
    fail=st.booleans(),
    nested=st.booleans(),
)
def test_atomic_path_replaces_whole_file_or_leaves_the_old_one_and_no_temp(old, new, fail, nested):
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / ("a/b" if nested else "") / "asset.parquet"
        if old is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(old)
        try:
            with atomic_path(target) as tmp:
                assert tmp.parent == target.parent and tmp.name.startswith(".asset.parquet.") and tmp.suffix == ".tmp"
                tmp.write_bytes(new)
                # A reader during the write still sees the old file (or none).
                assert (target.read_bytes() if target.exists() else None) == old
                if fail:
                    raise RuntimeError("killed mid-write")
        except RuntimeError:
            assert fail
        expected = old if fail else new
        assert (target.read_bytes() if target.exists() else None) == expected
        assert os.listdir(target.parent) == ([] if expected is None else ["asset.parquet"])
