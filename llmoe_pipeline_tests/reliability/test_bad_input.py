"""A corpus of malformed inputs, each made by breaking a 60-day slice of the real reference files.

Rejected inputs raise ONE `DataValidationError` naming the file, the row (header = row 1) and the
column, and write nothing; accepted inputs (data.py's documented choices: BOM, any row order, NUL bytes, control
characters, over-long headlines) load to what the clean slice gives. A few representative cases also
run through Dagster into a throwaway LLMOE home, which must be left exactly as it was; a bad config fails when
the settings load, before Dagster runs, and leaves the home as it was too. Files planted in the asset or model
store are never unpickled: they fail with an error naming them, or the model store retrains.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pydantic
import pytest
import yaml

from llmoe_pipeline import DataValidationError, build_features, daily_news, load_headlines, load_prices
from llmoe_pipeline.config.settings import ConfigError, load_settings
from llmoe_pipeline.data import MAX_HEADLINE_CHARS
from llmoe_pipeline.defs.assets.features import split_order_problems
from llmoe_pipeline_tests.reliability.helpers import (
    Slices,
    csv_bytes,
    failed_checks,
    materialize_pipeline,
    materialized_assets,
    snapshot,
    step_failure_text,
    write_data_folder,
)

PRICES, HEADLINES = "prices.csv", "headlines.csv"


def line(i: int) -> int:
    """File row of data row i (0-based) when no cell spans lines: the header is row 1."""
    return i + 2


def with_cell(df: pd.DataFrame, i: int, column: str, value: str) -> pd.DataFrame:
    out = df.copy()
    out.loc[i, column] = value
    return out


def replace_in_line(data: bytes, i: int, old: bytes, new: bytes) -> bytes:
    """Replace the first `old` in data row i (0-based) of a file without multi-line cells."""
    lines = data.split(b"\n")
    lines[i + 1] = lines[i + 1].replace(old, new, 1)
    return b"\n".join(lines)


def swap_high_low(df: pd.DataFrame, i: int) -> pd.DataFrame:
    out = df.copy()
    out.loc[i, ["high", "low"]] = [df.loc[i, "low"], df.loc[i, "high"]]
    return out


def us_date(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{int(m)}/{int(d)}/{y}"


@dataclass(frozen=True)
class Rejected:
    id: str
    file: str  # the broken file: PRICES or HEADLINES
    make: Callable[[Slices], bytes]
    column: str | None
    rows: tuple[int, ...]
    problem: str  # text the message must contain
    bug: str = ""  # non-empty: a known bug in data.py; the case is a strict xfail until it is fixed


def P(s: Slices) -> pd.DataFrame:
    return s.prices


def H(s: Slices) -> pd.DataFrame:
    return s.headlines


def cell(table: Callable[[Slices], pd.DataFrame], i: int, column: str, value: str) -> Callable[[Slices], bytes]:
    """A file maker: the slice with one cell (data row i, 0-based) replaced."""
    return lambda s: csv_bytes(with_cell(table(s), i, column, value))


def frame(make_frame: Callable[[Slices], pd.DataFrame], **to_csv) -> Callable[[Slices], bytes]:
    return lambda s: csv_bytes(make_frame(s), **to_csv)


def in_line(table: Callable[[Slices], pd.DataFrame], i: int, old: bytes, new: bytes) -> Callable[[Slices], bytes]:
    return lambda s: replace_in_line(csv_bytes(table(s)), i, old, new)


def with_close_above_high(s: Slices, relative: float) -> pd.DataFrame:
    """The slice with row 17's close set `relative` above its high."""
    return with_cell(P(s), 17, "close", repr(float(P(s).loc[17, "high"]) * (1 + relative)))


def close_above_high(relative: float) -> Callable[[Slices], bytes]:
    return lambda s: csv_bytes(with_close_above_high(s, relative))


NOT_FINITE, NOT_POSITIVE, BAD_VOLUME = "not a finite number", "price must be positive", "non-negative integer"
BLANK_HEADLINE, NO_COMMA = "headline is empty or only whitespace", "is the delimiter a comma?"

REJECTED = [
    # --- prices: structure
    Rejected("missing_column", PRICES, frame(lambda s: P(s).drop(columns="volume")), "volume", (1,), "missing column"),
    Rejected(
        "renamed_column",
        PRICES,
        frame(lambda s: P(s).rename(columns={"adj_close": "adjclose"})),
        "adj_close",
        (1,),
        "missing column",
    ),
    Rejected("extra_column", PRICES, frame(lambda s: P(s).assign(vwap="1.0")), "vwap", (1,), "unexpected column"),
    Rejected("semicolon_delimiter", PRICES, frame(P, sep=";"), "date", (1,), NO_COMMA),
    Rejected("tab_delimiter", PRICES, frame(P, sep="\t"), "date", (1,), NO_COMMA),
    Rejected("empty_file", PRICES, lambda s: b"", None, (), "file is empty"),
    Rejected("blank_lines_only", PRICES, lambda s: b"\n  \n\n", None, (), "file is empty"),
    Rejected("header_only", PRICES, frame(lambda s: P(s).iloc[:0]), None, (), "header but no data rows"),
    Rejected(
        "non_utf8_bytes", PRICES, in_line(P, 10, b"AAPL", b"AAPL\xe9"), None, (line(10),), "is not UTF-8 (byte 0xe9"
    ),
    Rejected(
        "ragged_row",
        PRICES,
        in_line(P, 10, b"AAPL", b"AAPL,1"),
        None,
        (line(10),),
        "Expected 8 fields in line 12, saw 9",
    ),
    # pandas says 'EOF inside string starting at row 11' (0-based, header = 0): data.py adds one.
    Rejected(
        "unclosed_quote",
        PRICES,
        in_line(P, 10, b"AAPL", b'"AAPL'),
        None,
        (line(10),),
        "EOF inside string starting at row 11",
    ),
    Rejected("empty_ticker", PRICES, cell(P, 3, "ticker", " "), "ticker", (line(3),), "empty ticker"),
    # Tickers become file names (asset partitions): a path must never pass as one. Tickers are case-insensitive
    # and upper-cased when read (data.normalize_ticker), so the message shows them upper-cased.
    Rejected(
        "ticker_with_path",
        PRICES,
        cell(P, 3, "ticker", "../../ESCAPED"),
        "ticker",
        (line(3),),
        "invalid ticker(s) ['../../ESCAPED']",
    ),
    Rejected(
        "ticker_absolute_path",
        PRICES,
        cell(P, 7, "ticker", "/tmp/x"),
        "ticker",
        (line(7),),
        "invalid ticker(s) ['/TMP/X']",
    ),
    # --- prices: dates
    Rejected(
        "impossible_date",
        PRICES,
        cell(P, 10, "date", "2014-02-30"),
        "date",
        (line(10),),
        "unparsable date(s) ['2014-02-30']",
    ),
    Rejected(
        "text_date", PRICES, cell(P, 11, "date", "yesterday"), "date", (line(11),), "unparsable date(s) ['yesterday']"
    ),
    Rejected(
        "mixed_date_formats",
        PRICES,
        frame(lambda s: with_cell(P(s), 10, "date", us_date(P(s).loc[10, "date"]))),
        "date",
        (line(10),),
        "mixed date formats",
    ),
    Rejected(
        "duplicate_ticker_date",
        PRICES,
        frame(lambda s: pd.concat([P(s), P(s).iloc[[20]]])),
        "date",
        (line(20), line(60)),
        "duplicate (ticker, date)",
    ),
    # --- prices: values
    Rejected("nan_price", PRICES, cell(P, 5, "close", "NaN"), "close", (line(5),), NOT_FINITE),
    Rejected("empty_price_cell", PRICES, cell(P, 5, "open", ""), "open", (line(5),), NOT_FINITE),
    Rejected("inf_price", PRICES, cell(P, 5, "high", "inf"), "high", (line(5),), NOT_FINITE),
    Rejected("overflowing_price", PRICES, cell(P, 5, "high", "1e400"), "high", (line(5),), NOT_FINITE),
    Rejected("negative_price", PRICES, cell(P, 5, "low", "-1.5"), "low", (line(5),), NOT_POSITIVE),
    Rejected("zero_price", PRICES, cell(P, 5, "adj_close", "0"), "adj_close", (line(5),), NOT_POSITIVE),
    Rejected(
        "several_bad_rows",
        PRICES,
        cell(lambda s: with_cell(P(s), 5, "close", "NaN"), 9, "close", "x"),
        "close",
        (line(5), line(9)),
        "not a finite number: ['NaN', 'x']",
    ),
    # data.py turns NUL into a space before pandas parses (its C parser would end the cell at the NUL).
    Rejected(
        "nul_byte_in_price",
        PRICES,
        cell(P, 5, "close", "115.0\x0099"),
        "close",
        (line(5),),
        "not a finite number: ['115.0 99']",
    ),
    Rejected(
        "high_below_low", PRICES, frame(lambda s: swap_high_low(P(s), 30)), "high", (line(30),), "high is below low"
    ),
    Rejected("negative_volume", PRICES, cell(P, 40, "volume", "-100"), "volume", (line(40),), BAD_VOLUME),
    Rejected("fractional_volume", PRICES, cell(P, 40, "volume", "100.5"), "volume", (line(40),), BAD_VOLUME),
    Rejected(
        "volume_beyond_int64",
        PRICES,
        cell(P, 40, "volume", "1e30"),
        "volume",
        (line(40),),
        "volume does not fit int64 (must be below 2**63), got [1e+30]",
    ),
    Rejected(
        "volume_2_pow_63", PRICES, cell(P, 40, "volume", str(2**63)), "volume", (line(40),), "volume does not fit int64"
    ),
    Rejected(
        "open_above_high",
        PRICES,
        cell(P, 15, "open", "999.0"),
        "open",
        (line(15),),
        "open is outside [low, high], e.g. open 999.0",
    ),
    Rejected(
        "close_below_low",
        PRICES,
        cell(P, 16, "close", "1.5"),
        "close",
        (line(16),),
        "close is outside [low, high], e.g. close 1.5",
    ),
    # Just beyond the 1e-6 relative tolerance (the clean slice's close sits inside [low, high]).
    Rejected(
        "close_just_above_high", PRICES, close_above_high(2e-6), "close", (line(17),), "close is outside [low, high]"
    ),
    # --- headlines
    Rejected(
        "headline_whitespace_only", HEADLINES, cell(H, 3, "headline", "  \t   "), "headline", (line(3),), BLANK_HEADLINE
    ),
    Rejected(
        "headline_control_chars_only",
        HEADLINES,
        cell(H, 3, "headline", "\x01\x02\x1f"),
        "headline",
        (line(3),),
        BLANK_HEADLINE,
    ),
    # Row 2's cell spans 3 lines, so row 6 starts 2 lines later than usual.
    Rejected(
        "headline_row_after_multiline_cell",
        HEADLINES,
        frame(lambda s: with_cell(with_cell(H(s), 2, "headline", "one\ntwo\nthree"), 6, "headline", " ")),
        "headline",
        (line(6) + 2,),
        BLANK_HEADLINE,
    ),
    Rejected(
        "headline_renamed_column",
        HEADLINES,
        frame(lambda s: H(s).rename(columns={"headline": "title"})),
        "headline",
        (1,),
        "missing column",
    ),
    Rejected(
        "headline_extra_column",
        HEADLINES,
        frame(lambda s: H(s).assign(url="http://x")),
        "url",
        (1,),
        "unexpected column",
    ),
    Rejected(
        "headline_unparsable_date",
        HEADLINES,
        cell(H, 7, "date", "2014-13-01"),
        "date",
        (line(7),),
        "unparsable date(s) ['2014-13-01']",
    ),
    Rejected(
        "headline_non_utf8",
        HEADLINES,
        in_line(H, 4, b"AAPL", b"AAPL\xff\xfe"),
        None,
        (line(4),),
        "is not UTF-8 (byte 0xff",
    ),
    Rejected("headline_empty_file", HEADLINES, lambda s: b"", None, (), "file is empty"),
    Rejected("headline_empty_ticker", HEADLINES, cell(H, 5, "ticker", "  "), "ticker", (line(5),), "empty ticker"),
    Rejected(
        "headline_ticker_with_path",
        HEADLINES,
        cell(H, 5, "ticker", "AAPL/../../x"),
        "ticker",
        (line(5),),
        "invalid ticker(s) ['AAPL/../../X']",
    ),
]


def load(path: Path):
    """What the raw assets call for the AAPL partition."""
    return load_prices([path], tickers=["AAPL"]) if path.name == PRICES else load_headlines([path], tickers=["AAPL"])


def write_case(folder: Path, slices: Slices, file: str, content: bytes) -> Path:
    """The broken file beside the clean other file, plus a config for the pipeline."""
    files = {PRICES: csv_bytes(slices.prices), HEADLINES: csv_bytes(slices.headlines), file: content}
    return write_data_folder(folder, files[PRICES], files[HEADLINES])


def case_params(cases):
    return [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else []) for c in cases
    ]


@pytest.mark.parametrize("case", case_params(REJECTED))
def test_rejected_input_names_file_row_and_column_and_writes_nothing(case, slices, tmp_path):
    write_case(tmp_path, slices, case.file, case.make(slices))
    path = tmp_path / case.file
    before = snapshot(tmp_path)
    with pytest.raises(DataValidationError) as err:
        load(path)
    e = err.value
    assert (e.path, e.column, tuple(e.rows)) == (str(path), case.column, case.rows)
    message = str(e)
    assert message.startswith(f"{path}: ") and case.problem in message
    if case.rows:
        assert f"row{'s' if len(case.rows) > 1 else ''} {', '.join(map(str, case.rows))}" in message
    if case.column:
        assert f"column '{case.column}'" in message
    assert snapshot(tmp_path) == before


def test_corpus_is_large_and_varied():
    assert len(REJECTED) + len(ACCEPTED) >= 25
    assert {c.file for c in REJECTED} == {PRICES, HEADLINES}


# ---------------------------------------------------------------------------------------------- accepted
def _control_chars(s: Slices) -> bytes:
    # Quote every cell: pandas leaves a cell with a bare \r unquoted (see the carriage-return test below).
    broken = with_cell(H(s), 3, "headline", "Apple\x01unveils\x07 the\x1b[1m iPhone\r6\x7f")
    return csv_bytes(broken, quoting=csv.QUOTE_ALL)


def unquoted(headlines: pd.DataFrame) -> pd.DataFrame:
    """Headlines without commas or quotes, so that no cell of the file is quoted."""
    return headlines.assign(headline=headlines["headline"].str.replace(r'[,"]', "", regex=True))


ONE_MB = ("Apple unveils a larger iPhone. " * 40_000)[:1_000_000]


@dataclass(frozen=True)
class Accepted:
    id: str
    file: str
    make: Callable[[Slices], bytes]
    expected: Callable[[Slices], pd.DataFrame]  # what the clean slice, edited by hand, loads to
    bug: str = ""


def _clean_load(file: str, df: pd.DataFrame, tmp: Path) -> pd.DataFrame:
    path = tmp / f"clean_{file}"
    path.write_bytes(csv_bytes(df))
    return load_prices([path]) if file == PRICES else load_headlines([path])


ACCEPTED = [
    Accepted("utf8_bom", PRICES, lambda s: b"\xef\xbb\xbf" + csv_bytes(P(s)), P),
    Accepted("crlf_line_endings", PRICES, frame(P, newline="\r\n"), P),
    Accepted("dates_out_of_order", PRICES, frame(lambda s: P(s).sample(frac=1, random_state=0)), P),
    Accepted(
        "headlines_out_of_order",
        HEADLINES,
        frame(lambda s: H(s).sort_values("date", ascending=False, kind="stable")),
        H,
    ),
    # Within the 1e-6 relative tolerance: vendors round open/high/low/close independently.
    Accepted("close_within_rounding_of_high", PRICES, close_above_high(5e-7), lambda s: with_close_above_high(s, 5e-7)),
    Accepted("headline_bom", HEADLINES, lambda s: b"\xef\xbb\xbf" + csv_bytes(H(s)), H),
    # Control characters become spaces, then the text is stripped.
    Accepted(
        "headline_control_chars",
        HEADLINES,
        _control_chars,
        lambda s: with_cell(H(s), 3, "headline", "Apple unveils  the [1m iPhone 6"),
    ),
    Accepted(
        "headline_1mb",
        HEADLINES,
        cell(H, 3, "headline", ONE_MB),
        lambda s: with_cell(H(s), 3, "headline", ONE_MB[:MAX_HEADLINE_CHARS]),
    ),
    Accepted(
        "headline_1mb_file_without_quotes",
        HEADLINES,
        cell(lambda s: unquoted(H(s)), 3, "headline", ONE_MB),
        lambda s: with_cell(unquoted(H(s)), 3, "headline", ONE_MB[:MAX_HEADLINE_CHARS]),
    ),
    Accepted(
        "headline_nul_byte",
        HEADLINES,
        cell(H, 3, "headline", "Apple\x00unveils iPads"),
        lambda s: with_cell(H(s), 3, "headline", "Apple unveils iPads"),
    ),
]


@pytest.mark.parametrize("case", case_params(ACCEPTED))
def test_accepted_input_loads_like_the_clean_slice(case, slices, tmp_path):
    path = tmp_path / case.file
    path.write_bytes(case.make(slices))
    got = load(path)
    expected = _clean_load(case.file, case.expected(slices), tmp_path)
    pd.testing.assert_frame_equal(got, expected)
    assert got["date"].is_monotonic_increasing


def test_long_headline_is_cut_to_the_limit(slices, tmp_path):
    path = tmp_path / HEADLINES
    path.write_bytes(csv_bytes(with_cell(unquoted(H(slices)), 3, "headline", ONE_MB)))
    assert b'"' not in path.read_bytes()
    got = load(path)
    lengths = got["headline"].str.len()
    assert lengths.max() == MAX_HEADLINE_CHARS == 4000
    assert (got["headline"] == ONE_MB[:4000]).sum() == 1


def test_headlines_of_a_ticker_without_prices_are_ignored_and_its_partition_fails(slices, tmp_path):
    stray = H(slices).iloc[:5].assign(ticker="ZZZZ")
    write_case(tmp_path, slices, HEADLINES, csv_bytes(pd.concat([H(slices), stray])))
    prices = load(tmp_path / PRICES)
    all_headlines = load_headlines([tmp_path / HEADLINES])
    assert (all_headlines["ticker"] == "ZZZZ").sum() == 5
    # The AAPL partition sees exactly the clean AAPL headlines; daily_news only covers tickers with prices.
    clean = _clean_load(HEADLINES, H(slices), tmp_path)
    pd.testing.assert_frame_equal(load(tmp_path / HEADLINES), clean)
    news = daily_news(all_headlines, prices)
    assert set(news["ticker"]) == {"AAPL"} and len(news) == len(prices) == 60
    # The ZZZZ partition has no prices: one clear error naming the file and the column.
    with pytest.raises(DataValidationError) as err:
        load_prices([tmp_path / PRICES], tickers=["ZZZZ"])
    assert err.value.column == "ticker" and "no price rows for ticker(s) ['ZZZZ']" in str(err.value)
    assert str(tmp_path / PRICES) in str(err.value)


def test_bare_carriage_return_in_an_unquoted_headline_is_a_validation_error(slices, tmp_path):
    path = tmp_path / HEADLINES
    broken = with_cell(H(slices), 3, "headline", "Apple\rPay")  # pandas writes this cell unquoted
    content = csv_bytes(broken)
    assert b"AAPL,Apple\rPay," in content and b'"' in content  # other cells are quoted: line numbers get counted
    path.write_bytes(content)
    with pytest.raises(DataValidationError) as err:
        load(path)
    assert str(path) in str(err.value) and "row" in str(err.value)
    # A bare \r ends a line for pandas as for a text editor: 'Pay' starts a record of its own, on line 6.
    assert (err.value.column, err.value.rows) == ("date", [line(3) + 1])
    assert "unparsable date(s) ['Pay']" in str(err.value)


def test_blank_lines_in_a_file_with_quotes_do_not_shift_row_numbers(tmp_path):
    """pandas skips blank and whitespace-only lines; the line counter (csv.reader) must not count them as rows."""
    path = tmp_path / HEADLINES
    path.write_text('date,ticker,headline\n2014-01-02,AAPL,"one\ntwo"\n\n  \n2014-01-03,AAPL, \n', encoding="utf-8")
    with pytest.raises(DataValidationError) as err:
        load_headlines([path])
    # Lines: 1 header, 2-3 the two-line cell, 4 blank, 5 spaces only, 6 the blank headline.
    assert (err.value.column, err.value.rows) == ("headline", [6])


# ---------------------------------------------------------------------------------------------- later stages
def test_too_few_days_for_a_window_is_an_error_not_an_empty_table(slices, tmp_path):
    path = tmp_path / PRICES
    path.write_bytes(csv_bytes(P(slices).iloc[:34]))  # one day short of a complete window with a target
    prices = load(path)
    with pytest.raises(ValueError, match="no ticker has the 35 trading days a complete window needs"):
        build_features(prices)
    path.write_bytes(csv_bytes(P(slices).iloc[:35]))
    assert len(build_features(load(path))) == 1


def test_split_without_test_rows_is_reported(slices, tmp_path):
    split = {"test_start": "2015-06-01", "test_end": "2015-12-31"}  # after the slice's last day
    config_file = write_data_folder(tmp_path, csv_bytes(P(slices)), csv_bytes(H(slices)), split=split)
    cfg = load_settings(config_file).protocol
    assert (str(cfg.split.test_start), str(cfg.split.test_end)) == ("2015-06-01", "2015-12-31")
    features = build_features(load(tmp_path / PRICES), cfg.split)
    assert split_order_problems(features) == ["no test rows"]
    assert split_order_problems(build_features(load(tmp_path / PRICES))) == []  # the paper split has all three


@pytest.mark.parametrize(
    "split, message",
    [
        (
            {"train_start": "2014-12-02", "train_end": "2006-12-07"},
            "train_end 2006-12-07 is before train_start 2014-12-02",
        ),
        ({"test_start": "2015-01-05", "test_end": "2014-12-31"}, "test_end 2014-12-31 is before test_start 2015-01-05"),
        (
            {"train_end": "2014-12-02", "test_start": "2014-11-03"},
            "test_start 2014-11-03 must come after train_end 2014-12-02",
        ),
    ],
)
def test_config_with_end_before_start_is_rejected(tmp_path, split, message):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"split": split}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    # One problem, named by the file and the key.
    text = str(err.value)
    assert text.startswith(f"{path}: split: ") and message in text and text.count("; ") == 0


def test_unknown_router_backend_is_a_config_error(tmp_path):
    from llmoe_pipeline.router.backends.config import RouterBackendConfig

    expected = "Input should be 'vllm', 'transformers' or 'openai'"
    with pytest.raises(pydantic.ValidationError) as err:
        RouterBackendConfig(backend="x")
    assert err.value.error_count() == 1 and err.value.errors()[0]["loc"] == ("backend",)
    assert expected in str(err.value)
    assert RouterBackendConfig(backend="transformers").backend == "transformers"
    # Loaded from a file or a flag, it fails at load time, naming the file (or the defaults) and the key.
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"router_backend": {"backend": "x"}}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(err.value) == f"{path}: router_backend.backend: {expected} (got 'x')"
    with pytest.raises(ConfigError, match=r"router_backend\.backend: Input should be 'vllm'"):
        load_settings(router_backend="x")
    assert load_settings(router_backend="transformers").router_backend.backend == "transformers"


@pytest.mark.parametrize("kind", ["absolute_path", "relative_path", "folder_without_config"])
def test_model_path_that_does_not_exist_is_one_clear_error(kind, tmp_path, home):
    from llmoe_pipeline.router.model import ModelNotFoundError, model_id_of, resolve_model

    # A relative path looks like a Hugging Face id: it is looked up in the local cache only, never downloaded.
    name = {
        "absolute_path": str(tmp_path / "no-such-model"),
        "relative_path": "no-such-dir/no-such-model",
        "folder_without_config": str(tmp_path),
    }[kind]
    expected = {
        "absolute_path": "does not exist",
        "relative_path": "is not available locally",
        "folder_without_config": "has no config.json",
    }[kind]
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(name, home=home)
    assert name in str(err.value) and expected in str(err.value)
    # A path gets a path's advice; only a Hugging Face id is told how to download it.
    assert ("hf download" in str(err.value)) == (kind == "relative_path")
    if kind == "relative_path":
        with pytest.raises(ModelNotFoundError, match="Nothing is downloaded"):
            model_id_of(name)
    assert snapshot(home) == {}


# ---------------------------------------------------------------------------------------------- planted files
# Stored assets and models are Parquet, safetensors or JSON, never pickles: a file someone planted under the home
# can at worst fail to load (with an error naming it), never run code, and the model store retrains rather than
# trust an entry it cannot read.
class _Retrained(Exception):
    """Raised by the model store's train callback: the store did not trust the stored entry."""


def _retrain():
    raise _Retrained


def _live_pickle(marker: Path) -> bytes:
    """A pickle that creates `marker` when it is loaded."""
    import pickle

    class Payload:
        def __reduce__(self):
            return Path.touch, (marker,)

    return pickle.dumps(Payload())


def test_a_live_pickle_payload_does_run_code_when_unpickled(tmp_path):
    """The control for the tests below: the planted payload is real."""
    import pickle

    pickle.loads(_live_pickle(tmp_path / "ran"))
    assert (tmp_path / "ran").exists()


def test_planted_pickle_in_the_asset_store_is_never_loaded(tmp_path):
    from llmoe_pipeline.defs.io_manager import asset_file, load_asset_value, store_asset_value

    base, marker = tmp_path / "assets", tmp_path / "ran"
    planted = asset_file(base, ["llmoe_search"], "AAPL", "pkl")
    planted.parent.mkdir(parents=True)
    planted.write_bytes(_live_pickle(marker))
    with pytest.raises(FileNotFoundError, match="llmoe_search partition AAPL is not materialized"):
        load_asset_value(base, ["llmoe_search"], "AAPL")
    # Beside a stored value, the pickle is ignored too.
    store_asset_value(base, ["llmoe_search"], "AAPL", {"threshold": 0.5})
    assert load_asset_value(base, ["llmoe_search"], "AAPL") == {"threshold": 0.5}
    assert not marker.exists()


def test_planted_pickle_in_the_model_store_is_never_loaded(tmp_path):
    from llmoe_pipeline.models.model_set import ModelSet
    from llmoe_pipeline.models.store import ModelStore

    store, marker = ModelStore(tmp_path / "model_cache"), tmp_path / "ran"
    store.folder.mkdir()
    for name in ("fp.pkl", "fp.safetensors.pkl", "fp.pickle"):
        (store.folder / name).write_bytes(_live_pickle(marker))
    with pytest.raises(_Retrained):
        store.get_or_train("fp", ModelSet, _retrain)
    assert not marker.exists()


def _safetensors(metadata: dict | None) -> bytes:
    import torch
    from safetensors.torch import save

    return save({"w": torch.zeros(2)}, metadata=metadata)


def _our_header(**changes) -> dict:
    import json

    header = {
        "format": "llmoe.model_set.v1",
        "name": "x",
        "params": {},
        "train_seconds": 0.0,
        "search_table": "",
        "seeds": [
            {
                "seed": 0,
                "name": "x",
                "params": {},
                "flavor": "pytorch",
                "n_inputs": 55,
                "best_epoch": 0,
                "history": "",
                "network": {"class": "FeedForwardNet", "init_args": {}},
            }
        ],
    }
    return {"llmoe": json.dumps({**header, **changes})}


@dataclass(frozen=True)
class Planted:
    id: str
    kind: str  # safetensors | json
    content: Callable[[], bytes]
    bug: str = ""
    # False: valid JSON that is not tagged as ours is a plain JSON asset value (JSON-able asset values are
    # stored untagged), so the asset store returns it as data; it cannot run code either way.
    asset_store: bool = True


PLANTED = [
    Planted("garbage_safetensors", "safetensors", lambda: b"\x00" * 64),
    Planted("empty_safetensors", "safetensors", lambda: b""),
    Planted("foreign_safetensors", "safetensors", lambda: _safetensors({"other": "tool"})),
    Planted("safetensors_without_metadata", "safetensors", lambda: _safetensors(None)),
    Planted(
        "safetensors_of_another_version", "safetensors", lambda: _safetensors(_our_header(format="llmoe.model_set.v0"))
    ),
    Planted("safetensors_header_not_json", "safetensors", lambda: _safetensors({"llmoe": "{not json"})),
    Planted(
        "safetensors_with_our_format_but_no_seeds",
        "safetensors",
        lambda: _safetensors({"llmoe": '{"format": "llmoe.model_set.v1", "name": "x"}'}),
    ),
    Planted(
        "safetensors_with_an_unknown_network_class",
        "safetensors",
        lambda: _safetensors(
            _our_header(seeds=[{"seed": 0, "flavor": "pytorch", "network": {"class": "os.system", "init_args": {}}}])
        ),
    ),
    Planted("json_not_json", "json", lambda: b"{not json"),
    Planted("json_search_of_another_version", "json", lambda: b'{"format": "llmoe.search.v0"}', asset_store=False),
    Planted("json_search_without_fields", "json", lambda: b'{"format": "llmoe.search.v1"}'),
    Planted("json_not_utf8", "json", lambda: b'{"format": "llmoe.search.v1", "x": "\xff\xfe"}'),
]


def _planted_params(asset_store: bool = False):
    return [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else [])
        for c in PLANTED
        if c.asset_store or not asset_store
    ]


@pytest.mark.parametrize("case", _planted_params(asset_store=True))
def test_planted_model_file_in_the_asset_store_is_a_clear_error_naming_it(case, tmp_path):
    from llmoe_pipeline.defs.io_manager import asset_file, load_asset_value

    base = tmp_path / "assets"
    path = asset_file(base, ["expert_models"], "AAPL", case.kind)
    path.parent.mkdir(parents=True)
    path.write_bytes(case.content())
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as err:
        load_asset_value(base, ["expert_models"], "AAPL")
    assert str(err.value).startswith(f"{path}: ")
    assert snapshot(tmp_path) == before  # reading changes nothing


@pytest.mark.parametrize("case", _planted_params())
def test_planted_model_file_in_the_model_store_is_retrained_not_trusted(case, tmp_path):
    from llmoe_pipeline.models.experts import LLMoESearch
    from llmoe_pipeline.models.model_set import ModelSet
    from llmoe_pipeline.models.store import ModelStore

    store = ModelStore(tmp_path / "model_cache")
    store.folder.mkdir()
    (store.folder / f"fp.{case.kind}").write_bytes(case.content())
    with pytest.raises(_Retrained):
        store.get_or_train("fp", ModelSet if case.kind == "safetensors" else LLMoESearch, _retrain)
    assert not (store.folder / f"fp.{case.kind}").exists()  # the unreadable entry is gone


def test_files_the_pipeline_stores_load_back(tmp_path):
    """The control for the planted files: our own safetensors and JSON files are read, not refused."""
    from llmoe_pipeline.defs.io_manager import load_asset_value, store_asset_value
    from llmoe_pipeline.models.experts import LLMoESearch
    from llmoe_pipeline.models.model_set import ModelSet
    from llmoe_pipeline.models.store import ModelStore

    base = tmp_path / "assets"
    configurations = pd.DataFrame({"date": pd.to_datetime(["2015-01-02", "2015-01-05"]), "q=0.5 O#0 P#1": [1, 0]})
    search = LLMoESearch(0.5, 0.61, {"Optimistic": {"dropout": 0.1}}, pd.DataFrame({"quantile": [0.5]}), configurations)
    models = ModelSet(name="x", params={"a": 1}, models={}, search_table=pd.DataFrame({"trial": [0]}))
    assert store_asset_value(base, ["s"], "AAPL", search).suffix == ".json"
    assert store_asset_value(base, ["m"], "AAPL", models).suffix == ".safetensors"
    got = load_asset_value(base, ["s"], "AAPL")
    assert (got.threshold_quantile, got.threshold, dict(got.params)) == (0.5, 0.61, {"Optimistic": {"dropout": 0.1}})
    pd.testing.assert_frame_equal(got.configurations, configurations, check_dtype=False)
    got = load_asset_value(base, ["m"], "AAPL")
    assert (got.name, dict(got.params), dict(got.models)) == ("x", {"a": 1}, {})
    store = ModelStore(tmp_path / "model_cache")
    assert store.get_or_train("fp", LLMoESearch, lambda: search) == (search, False)
    value, reused = store.get_or_train("fp", LLMoESearch, _retrain)
    assert reused and value.threshold == 0.61


# ---------------------------------------------------------------------------------------------- through Dagster
@pytest.fixture(scope="module")
def good_home(slices, tmp_path_factory):
    """A home holding assets materialized from the clean slice: later bad runs must leave it untouched."""
    folder = tmp_path_factory.mktemp("good")
    config_file = write_case(folder / "data", slices, PRICES, csv_bytes(slices.prices))
    with pytest.MonkeyPatch.context() as mp:
        result = materialize_pipeline(folder / "home", config_file, mp)
    assert result.success, step_failure_text(result)
    return folder / "home"


def _home_copy(good_home: Path, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(good_home, home)
    return home


def test_good_home_holds_the_three_assets(good_home):
    assert set(snapshot(good_home)) == {
        "assets/raw_prices/AAPL.parquet",
        "assets/raw_headlines/AAPL.parquet",
        "assets/feature_windows/AAPL.parquet",
    }
    assert len(pd.read_parquet(good_home / "assets/feature_windows/AAPL.parquet")) == 60 - 34 + 1  # + the live window


BY_ID = {c.id: c for c in REJECTED}
DAGSTER_CASES = {
    "nan_price": "raw_prices",
    "missing_column": "raw_prices",
    "non_utf8_bytes": "raw_prices",
    "headline_whitespace_only": "raw_headlines",
    "headline_non_utf8": "raw_headlines",
}


@pytest.mark.parametrize("case_id", list(DAGSTER_CASES))
def test_rejected_input_through_dagster_changes_no_stored_asset(case_id, slices, good_home, tmp_path, monkeypatch):
    case, failing_step = BY_ID[case_id], DAGSTER_CASES[case_id]
    home = _home_copy(good_home, tmp_path)
    before = snapshot(home)
    config_file = write_case(tmp_path / "data", slices, case.file, case.make(slices))
    result = materialize_pipeline(home, config_file, monkeypatch)
    assert not result.success
    failures = step_failure_text(result)
    assert set(failures) == {failing_step}
    path = tmp_path / "data" / case.file
    assert "DataValidationError" in failures[failing_step] and f"{path}: " in failures[failing_step]
    assert case.problem in failures[failing_step]
    if case.column:
        assert f"column '{case.column}'" in failures[failing_step]
    # Still-valid assets may be rewritten with identical bytes; nothing may be new or different.
    assert snapshot(home) == before


BAD_SPLIT = {"train_start": "2014-12-02", "train_end": "2006-12-07"}
BAD_SPLIT_MESSAGE = "train_end 2006-12-07 is before train_start 2014-12-02"


def test_config_error_fails_before_dagster_and_changes_no_stored_asset(slices, good_home, tmp_path, monkeypatch):
    """Settings are loaded (and validated) once, before Dagster runs anything: a bad value is a ConfigError
    naming the file and the key, and the home is left byte for byte as it was."""
    home = _home_copy(good_home, tmp_path)
    before = snapshot(home)
    config_file = write_case(tmp_path / "data", slices, PRICES, csv_bytes(slices.prices))
    config = yaml.safe_load(config_file.read_text())
    config["split"] = BAD_SPLIT
    config_file.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as err:
        materialize_pipeline(home, config_file, monkeypatch)
    assert str(err.value).startswith(f"{config_file}: split: ") and BAD_SPLIT_MESSAGE in str(err.value)
    assert snapshot(home) == before


def test_config_error_in_llmoe_run_is_one_line_and_changes_nothing_in_the_home(
    slices, good_home, tmp_path, monkeypatch, capsys
):
    from llmoe_pipeline.app import cli

    home = _home_copy(good_home, tmp_path)
    before = snapshot(home)
    config_file = write_case(tmp_path / "data", slices, PRICES, csv_bytes(slices.prices))
    config = yaml.safe_load(config_file.read_text())
    config["split"] = BAD_SPLIT
    config_file.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("LLMOE_HOME", str(home))
    monkeypatch.setattr(cli, "quiet_libraries", lambda: None)  # it sets process-wide variables for a real run
    assert cli.main(["run", "--config", str(config_file)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"llmoe run: error: {config_file}: split: ") and BAD_SPLIT_MESSAGE in err
    assert err.count("\n") == 1
    assert snapshot(home) == before  # not even the Dagster instance folder was created


def test_invalid_protocol_given_to_dagster_fails_the_run_and_changes_no_stored_asset(
    slices, good_home, tmp_path, monkeypatch
):
    """The protocol resource holds plain values (the launchpad can edit them): an invalid protocol that did not
    come through load_settings still fails raw_prices' step (raw_headlines, which reads raw_prices for its
    news-coverage check, does not run), and nothing stored changes."""
    from llmoe_pipeline.defs.resources import ProtocolResource

    home = _home_copy(good_home, tmp_path)
    before = snapshot(home)
    config_file = write_case(tmp_path / "data", slices, PRICES, csv_bytes(slices.prices))
    protocol = load_settings(config_file).protocol.model_dump(mode="json")
    bad = ProtocolResource(protocol={**protocol, "split": {**protocol["split"], **BAD_SPLIT}})
    result = materialize_pipeline(home, config_file, monkeypatch, resources={"protocol": bad})
    failures = step_failure_text(result)
    assert not result.success and set(failures) == {"raw_prices"}
    assert all(BAD_SPLIT_MESSAGE in text for text in failures.values())
    assert snapshot(home) == before


def _blocking_case(name: str, slices: Slices, folder: Path) -> Path:
    if name == "too_few_days":
        return write_case(folder, slices, PRICES, csv_bytes(P(slices).iloc[:30]))
    config_file = write_case(folder, slices, PRICES, csv_bytes(P(slices)))
    config = yaml.safe_load(config_file.read_text())
    config["split"] = {"test_start": "2015-06-01", "test_end": "2015-12-31"}
    config_file.write_text(yaml.safe_dump(config))
    return config_file


# case: (failing check, failing step, assets Dagster records as materialized: the checked asset itself is)
# The asset whose blocking check fails is not materialized: it fails before its value is stored (and
# raw_headlines, which reads raw_prices for its news-coverage check, does not run without it).
BLOCKING = {
    "too_few_days": ("enough_clean_days", "raw_prices", set()),
    "no_test_rows": ("split_order", "feature_windows", {"raw_prices", "raw_headlines"}),
}


@pytest.mark.parametrize("name", list(BLOCKING))
def test_blocking_check_fails_the_run_and_stops_downstream(name, slices, good_home, tmp_path, monkeypatch):
    check, step, materialized = BLOCKING[name]
    home = _home_copy(good_home, tmp_path)
    result = materialize_pipeline(home, _blocking_case(name, slices, tmp_path / "data"), monkeypatch)
    assert not result.success and failed_checks(result) == {check}
    assert set(step_failure_text(result)) == {step}
    assert materialized_assets(result) == materialized  # too_few_days: feature_windows never ran


@pytest.mark.parametrize("name", list(BLOCKING))
def test_blocking_check_failure_leaves_the_stored_asset_unchanged(name, slices, good_home, tmp_path, monkeypatch):
    home = _home_copy(good_home, tmp_path)
    before = snapshot(home)
    materialize_pipeline(home, _blocking_case(name, slices, tmp_path / "data"), monkeypatch)
    assert snapshot(home) == before
