"""CSV files read in chunks, so memory stays a small multiple of what is kept, not of the file.

Three streaming passes, none holding the file's text: (1) a scan that checks UTF-8 (naming the byte, its
offset and line), emptiness and whether any cell is quoted; (2) pandas' parser, `CHUNK_BYTES` of text at a
time, each chunk handed to the caller's `prepare` (which cuts headlines, makes repeated values categorical);
(3) only when the file has quotes, a `csv.reader` pass that finds the line each record starts on (a quoted cell
may span lines). A UTF-8 byte-order mark is skipped and NUL bytes are read as spaces, because pandas' parser
would otherwise end the cell at a NUL and silently drop the rest.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from array import array
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from llmoe_pipeline.data.errors import DataValidationError

BOM = b"\xef\xbb\xbf"
BLOCK_BYTES = 1 << 20
CHUNK_BYTES = 8 << 20  # text per parsed chunk: a pandas chunk of object cells costs a few times this
MIN_CHUNK_ROWS = 64

Prepare = Callable[[pd.DataFrame], pd.DataFrame]


class _CleanBytes(io.RawIOBase):
    """The file's bytes without a leading BOM and with NUL bytes as spaces (in UTF-8 a 0x00 byte is only NUL)."""

    def __init__(self, path: Path):
        self._fh = open(path, "rb")  # noqa: SIM115 - closed with this stream
        if self._fh.read(3) != BOM:
            self._fh.seek(0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._fh.read(len(buffer)).replace(b"\x00", b" ")
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()


def _scan(path: Path) -> tuple[int, bool, bool]:
    """Newline count, whether any '"' occurs, whether any non-whitespace text occurs. Rejects non-UTF-8 bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines, quoted, text_seen, offset = 0, False, False, 0
    with open(path, "rb") as fh:
        start = fh.read(3)
        if start != BOM:
            fh.seek(0)
        else:
            offset = 3
        while True:
            block = fh.read(BLOCK_BYTES)
            pending = decoder.getstate()[0]
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                data = pending + block
                line = newlines + data[: exc.start].count(b"\n") + 1
                at = offset - len(pending) + exc.start
                raise DataValidationError(
                    path, None, [line], f"is not UTF-8 (byte 0x{data[exc.start]:02x} at offset {at})"
                ) from None
            if not block:
                return newlines, quoted, text_seen
            newlines += block.count(b"\n")
            quoted = quoted or b'"' in block
            text_seen = text_seen or bool(text.strip())
            offset += len(block)


def _parser_error(path: Path, exc: Exception) -> DataValidationError:
    # pandas reports 'line N' (1-based) for ragged rows but 'row N' (0-based, header = 0) for an
    # unclosed quote; both count the lines outside quoted cells, over the whole file.
    m = re.search(r"\b(line|row) (\d+)", str(exc))
    rows = [int(m.group(2)) + (m.group(1) == "row")] if m else []
    return DataValidationError(path, None, rows, f"malformed CSV ({exc})")


def concat_chunks(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate chunks; a column that is categorical in every chunk stays categorical (union of categories)."""
    if len(chunks) == 1:
        return chunks[0].reset_index(drop=True)
    columns = {}
    for col in chunks[0].columns:
        parts = [c[col] for c in chunks]
        if all(isinstance(p.dtype, pd.CategoricalDtype) for p in parts):
            columns[col] = pd.Series(pd.api.types.union_categoricals(parts, ignore_order=True))
        else:
            columns[col] = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(columns)


def read_csv_chunks(path: Path, prepare: Prepare | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Every cell as text (after `prepare`), and each row's line in the file (header = line 1)."""
    newlines, quoted, text_seen = _scan(path)
    if not text_seen:
        raise DataValidationError(path, None, [], "file is empty")
    size = max(path.stat().st_size, 1)
    rows_per_chunk = max(MIN_CHUNK_ROWS, CHUNK_BYTES * max(newlines, 1) // size)
    chunks = []
    try:
        with (
            io.BufferedReader(_CleanBytes(path)) as stream,
            pd.read_csv(
                stream, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8", chunksize=rows_per_chunk
            ) as reader,
        ):
            for chunk in reader:
                chunks.append(prepare(chunk) if prepare else chunk)
    except pd.errors.ParserError as exc:
        raise _parser_error(path, exc) from None
    except pd.errors.EmptyDataError:
        raise DataValidationError(path, None, [], "file is empty") from None
    n_rows = sum(len(c) for c in chunks)
    if n_rows == 0:
        raise DataValidationError(path, None, [], "file has a header but no data rows")
    df = concat_chunks([c for c in chunks if len(c)])
    return df, (record_lines(path, n_rows) if quoted else np.arange(2, n_rows + 2))


def record_lines(path: Path, n_rows: int) -> np.ndarray:
    """The line each record starts on, as pandas splits records (quoted cells may span lines)."""
    # A cell can be as long as the file (headlines are cut after parsing); the default limit is 128 KiB.
    csv.field_size_limit(max(csv.field_size_limit(), path.stat().st_size + 1))
    starts = array("q")
    with io.TextIOWrapper(io.BufferedReader(_CleanBytes(path)), encoding="utf-8", newline="") as text:
        # newline="": csv sees the line endings as pandas does (\r, \n and \r\n all end a line).
        reader = csv.reader(text)
        try:
            next(reader, None)
            prev_end = reader.line_num
            for row in reader:
                if row and not (len(row) == 1 and row[0].isspace()):  # pandas skips blank lines: not records
                    starts.append(prev_end + 1)
                prev_end = reader.line_num
        except csv.Error as exc:
            raise DataValidationError(path, None, [reader.line_num], f"malformed CSV ({exc})") from None
    return np.asarray(starts[:n_rows]) if len(starts) >= n_rows else np.arange(2, n_rows + 2)
