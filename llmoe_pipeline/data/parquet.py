"""Parquet files read batch by batch into the same text cells a CSV file gives, so both share one validation.

Typed columns become the text a CSV would hold: numbers as numbers, dates as `YYYY-MM-DD`, timestamps as ISO 8601
(an aware timestamp keeps its offset, so `dates.parse_dates` converts it to the exchange's date; a naive one is
exchange-local). Rejected with file, row and column named: a null (missing) value (except in `nullable` columns,
where it is an empty cell, as in a CSV file), bytes that are not UTF-8 text (UTF-8 bytes are decoded), and nested
types. Row numbers are 2, 3, ... as if the header were row 1, like a CSV file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from llmoe_pipeline.data.csv_stream import concat_chunks
from llmoe_pipeline.data.errors import DataValidationError

BATCH_ROWS = 65_536


def _problems_first(path: Path, problems: dict[str, tuple[list[int], str]], order: list[str]) -> None:
    for col in order:
        if col in problems:
            rows, problem = problems[col]
            raise DataValidationError(path, col, rows, problem)


def _decode_bytes(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """UTF-8 bytes as text; the positions that are not UTF-8."""
    out, bad = [], []
    for i, v in enumerate(values.to_pylist()):
        try:
            out.append(None if v is None else v.decode("utf-8"))
        except UnicodeDecodeError:
            out.append("")
            bad.append(i)
    return pa.array(out, pa.string()), np.asarray(bad, dtype=np.int64)


def _timestamps_as_text(values: pa.Array) -> pa.Array:
    stamps = pd.Series(values.to_pandas())
    codes, uniques = pd.factorize(stamps)
    if getattr(values.type, "tz", None):
        text = pd.DatetimeIndex(uniques).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S+00:00")
    else:
        text = pd.DatetimeIndex(uniques).strftime("%Y-%m-%dT%H:%M:%S")
    cells = np.asarray(text, dtype=object)[codes] if len(text) else np.array([], dtype=object)
    cells[codes < 0] = None
    return pa.array(cells, pa.string())


def _as_text(values: pa.Array) -> tuple[pa.Array, np.ndarray, str]:
    """(text cells, positions with a problem, the problem) for one column of a batch."""
    kind = values.type
    if pa.types.is_dictionary(kind):
        return _as_text(values.dictionary_decode())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        text, bad = _decode_bytes(values)
        return text, bad, "bytes that are not UTF-8 text"
    if pa.types.is_timestamp(kind):
        return _timestamps_as_text(values), np.array([], dtype=np.int64), ""
    if pa.types.is_nested(kind):
        return pa.nulls(len(values), pa.string()), np.arange(len(values)), f"unsupported Parquet type {kind}"
    return pc.cast(values, pa.string()), np.array([], dtype=np.int64), ""


def read_parquet_batches(
    path: Path,
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    nullable: Iterable[str] = (),
    columns: list[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Every cell as text (after `prepare`), and each row's number (header = row 1)."""
    try:
        pf = pq.ParquetFile(path)
        names = [n for n in pf.schema_arrow.names if n not in _pandas_index_columns(pf)]
        if columns is not None:
            missing = [c for c in columns if c not in names]
            if missing:
                raise DataValidationError(path, missing[0], [1], f"missing column(s) {missing}; found {names}")
            names = columns
        batches = pf.iter_batches(batch_size=BATCH_ROWS, columns=names)
        chunks, problems, offset = [], {}, 0
        for batch in batches:
            cells = {}
            for name, values in zip(batch.schema.names, batch.columns, strict=True):
                text, bad, problem = _as_text(values)
                nulls = np.flatnonzero(text.is_null().to_numpy(zero_copy_only=False))
                if name in nullable:
                    text = pc.fill_null(text, "")
                elif len(nulls) and name not in problems:
                    problems[name] = ((offset + nulls + 2).tolist(), "missing value (null)")
                if len(bad) and name not in problems:
                    problems[name] = ((offset + bad + 2).tolist(), problem)
                cells[name] = text.to_pandas().fillna("")
            chunk = pd.DataFrame(cells, columns=batch.schema.names)
            chunks.append(prepare(chunk) if prepare else chunk)
            offset += batch.num_rows
    except DataValidationError:
        raise
    except Exception as exc:  # pyarrow raises several types for truncated or corrupt files
        raise DataValidationError(path, None, [], f"not a readable Parquet file ({exc})") from None
    _problems_first(path, problems, names)
    if offset == 0:
        raise DataValidationError(path, None, [], "file has no data rows")
    return concat_chunks([c for c in chunks if len(c)]), np.arange(2, offset + 2)


def _pandas_index_columns(pf: pq.ParquetFile) -> set[str]:
    """Columns pandas stored its (non-range) index in: not data columns."""
    meta = pf.schema_arrow.pandas_metadata or {}
    return {c for c in meta.get("index_columns", []) if isinstance(c, str)}
