"""The headline loader's memory is bounded by what it keeps, not a multiple of the file (issue #14, item 13).

Measured with `/usr/bin/time -v` on a generated 50 MB headline CSV (the reference headlines repeated under other
tickers): before, the whole text was held several times over (bytes, a decoded string, two StringIO copies,
every cell as a Python string, then cleaned copies): peak RSS 567 MB, 448 MB above the loaded interpreter (9x the
file). Streamed in chunks with each headline cut as it is read: 300 MB, 178 MB above it (3.6x).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

BOUND = 6.0  # peak RSS growth while loading, in multiples of the file's size (before: 9-11x; now: about 3.6x)

_MEASURE = """
import json, sys
from llmoe_pipeline.data import load_headlines

def status(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(field + ":"))

load_headlines(sys.argv[2])  # warm-up on a small file: lazy imports and caches are not the load's cost
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the peak (VmHWM) to the current RSS: import-time peaks must not hide the load's
rows = len(load_headlines(sys.argv[1]))
print(json.dumps({"rows": rows, "grew_bytes": status("VmHWM") - before}))
"""


def _headline_file(data_dir, path, target_bytes: int) -> int:
    """The reference headlines, repeated under suffixed tickers until the file is about `target_bytes`."""
    base = pd.read_csv(data_dir / "headlines.csv", dtype=str, keep_default_na=False)
    copies = -(-target_bytes // (data_dir / "headlines.csv").stat().st_size)
    frame = pd.concat([base.assign(ticker=base["ticker"] + f"X{k}") for k in range(copies)], ignore_index=True)
    frame.to_csv(path, index=False)
    return len(frame)


def test_loading_a_20_mb_headline_file_grows_memory_by_less_than_6x_its_size(data_dir, tmp_path):
    big, small = tmp_path / "headlines.csv", tmp_path / "small.csv"
    rows = _headline_file(data_dir, big, 20_000_000)
    pd.read_csv(big, nrows=50, dtype=str).to_csv(small, index=False)
    size = big.stat().st_size
    assert 18e6 < size < 26e6
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(big), str(small)], capture_output=True, text=True, check=True, timeout=300
    )
    # Peak RSS growth (Linux: /proc/self/status VmHWM after resetting it through /proc/self/clear_refs).
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0.99 * rows < got["rows"] <= rows  # the reference file repeats a few headlines: dropped as duplicates
    ratio = got["grew_bytes"] / size
    assert ratio < BOUND, f"loading {size / 1e6:.1f} MB grew the peak RSS by {got['grew_bytes'] / 1e6:.0f} MB"


def test_chunked_reading_keeps_row_numbers_and_cut_headlines(tmp_path, monkeypatch):
    """Many small chunks (as a large file gets) give the rows, row numbers and cut headlines one chunk gives."""
    from llmoe_pipeline import DataValidationError, load_headlines
    from llmoe_pipeline.data import MAX_HEADLINE_CHARS, csv_stream

    lines = ["date,ticker,headline,source"]
    for i in range(3000):
        text = f'"multi\nline {i}"' if i % 7 == 0 else (f"{i} " + "x" * 5000 if i % 11 == 0 else f"plain {i}")
        lines.append(f"2016-01-{i % 28 + 1:02d},T{i % 3},{text},nyt")
    lines.append("2016-02-01,T1, ,nyt")  # a blank headline, after 3,000 records spanning 3,429 lines
    path = tmp_path / "h.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(csv_stream, "CHUNK_BYTES", 4096)
    with pytest.raises(DataValidationError) as err:
        load_headlines(path)
    assert (err.value.column, err.value.rows) == ("headline", [2 + 3000 + 3000 // 7 + 1])
    path.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    got = load_headlines(path)
    assert len(got) == 3000 and got["headline"].str.len().max() == MAX_HEADLINE_CHARS
    assert {str(t) for t in got["ticker"].unique()} == {"T0", "T1", "T2"}
